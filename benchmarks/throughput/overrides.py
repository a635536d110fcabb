"""Celery setting overrides for benchmark scenarios, carried in one ``BENCH_*`` variable.

The kit reads its configuration only from ``KIT_*`` variables, and several of its safe defaults
(late ack, events, result storage ...) have none, by design. To measure what each costs without
changing the kit, a scenario puts a JSON object of Celery settings in :data:`ENV_VAR`; the
worker applies it from :mod:`benchmarks.throughput.kit_tasks` (imported through
``KIT_IMPORTS``) and the producer applies the same object, so messages and worker agree (e.g. time
limits travel in message headers).

Celery's CLI reads a few settings while parsing arguments, before ``KIT_IMPORTS`` runs; an
override of those would be silently ignored, so they are refused here instead.

Two of the kit's per-task concerns are middleware with no setting at all (the lease renewer,
the task counters): :data:`DROP_ENV` names middleware classes to take out of the app's
pipeline (:func:`drop_middleware`), the worker side only. A name the pipeline does not hold
is an error, so a renamed class cannot turn the scenario into the default unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from celery.app.defaults import DEFAULTS

__all__ = [
    "DROP_ENV",
    "ENV_VAR",
    "OverrideError",
    "apply_overrides",
    "drop_middleware",
    "encode",
    "parse",
    "parse_drop",
]

ENV_VAR = "BENCH_CELERY_CONF"
DROP_ENV = "BENCH_KIT_DROP"  # comma-separated middleware class names

#: Read by ``celery worker`` at argument parsing, before the override hook is imported.
_READ_BEFORE_IMPORTS = frozenset(
    {
        "worker_prefetch_multiplier",
        "worker_concurrency",
        "worker_pool",
        "worker_disable_prefetch",
        "worker_state_db",
    }
)

Scalar = bool | int | float | str | None


class OverrideError(ValueError):
    """A malformed or ineffective override: better to stop than to measure the wrong thing."""


def parse(text: str | None) -> dict[str, Scalar]:
    """The overrides in ``text`` (the variable's value); empty when unset."""
    if text is None or not text.strip():
        return {}
    try:
        raw: Any = json.loads(text)
    except ValueError as exc:
        raise OverrideError(f"{ENV_VAR} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise OverrideError(f"{ENV_VAR} must be a JSON object of Celery setting names")
    return validate(raw)


def validate(overrides: Mapping[str, Any]) -> dict[str, Scalar]:
    checked: dict[str, Scalar] = {}
    for name, value in overrides.items():
        if name not in DEFAULTS:
            raise OverrideError(f"{ENV_VAR}: {name!r} is not a Celery setting")
        if name in _READ_BEFORE_IMPORTS:
            raise OverrideError(
                f"{ENV_VAR}: {name!r} is read before KIT_IMPORTS runs; "
                "use its KIT_* variable or a worker CLI flag"
            )
        if not isinstance(value, bool | int | float | str) and value is not None:
            raise OverrideError(f"{ENV_VAR}: {name!r} must be a JSON scalar")
        checked[name] = value
    return checked


def encode(overrides: Mapping[str, Scalar]) -> str:
    return json.dumps(dict(validate(overrides)), sort_keys=True)


def apply_overrides(app: Any, overrides: Mapping[str, Scalar]) -> None:
    """Update ``app.conf``; must run before the benchmark task is defined (tasks copy conf)."""
    if overrides:
        app.conf.update(dict(overrides))


def parse_drop(text: str | None) -> tuple[str, ...]:
    """The middleware class names in ``text`` (:data:`DROP_ENV`'s value); empty when unset."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def drop_middleware(app: Any, names: tuple[str, ...]) -> None:
    """Take the middleware of these class names out of the kit app's pipeline."""
    if not names:
        return
    from project.lifecycle.kit import kit_of
    from project.lifecycle.middleware import Pipeline

    kit = kit_of(app)
    present = {type(m).__name__ for m in kit.pipeline}
    if missing := sorted(set(names) - present):
        raise OverrideError(f"{DROP_ENV}: no middleware {missing} in the pipeline ({present})")
    kept = [m for m in kit.pipeline if type(m).__name__ not in names]
    kit.pipeline = Pipeline(kept, timed=kit.pipeline.timed)
