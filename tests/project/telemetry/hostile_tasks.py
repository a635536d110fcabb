"""Tasks that put secrets where Celery and the kit would report them: in their arguments,
their return value and their error message (imported by workers through KIT_IMPORTS)."""

from __future__ import annotations

from project import app


@app.task(name="tests.hostile_echo")
def hostile_echo(text: str) -> str:
    return f"echo: {text}"


@app.task(name="tests.hostile_fail")
def hostile_fail(text: str) -> None:
    raise ValueError(f"cannot handle {text}")
