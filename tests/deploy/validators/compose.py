"""The Compose file: the compose-spec JSON schema that ``check-jsonschema`` vendors, applied
after the same ``${VAR:-default}`` interpolation ``docker compose config`` performs, and the
references between services, volumes, bind mounts and build contexts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.deploy.validators.common import Problems, Unreadable, read_yaml, schema_errors

_INTERPOLATION = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: not NAME=value: {line!r}")
        env[name.strip()] = value.strip().strip("'\"")
    return env


class InterpolationError(ValueError):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution: $VAR, ${VAR}, ${VAR:-default}, ${VAR:?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset_or_empty = not current
        if op in (":-", "-"):
            return arg if (unset_or_empty if op == ":-" else current is None) else str(current)
        if op in (":?", "?"):
            if unset_or_empty if op == ":?" else current is None:
                raise InterpolationError(f"required variable {name} is missing: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if (unset_or_empty if op == ":+" else current is None) else arg
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def compose_schema() -> dict[str, Any]:
    """The compose-spec schema as vendored by check-jsonschema (its source and licence are
    in check_jsonschema/builtin_schemas/vendor/)."""
    import check_jsonschema

    vendored = Path(check_jsonschema.__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    schema: dict[str, Any] = json.loads(vendored.read_text())
    return schema


def render_compose(path: Path, env_file: Path) -> dict[str, Any]:
    rendered: dict[str, Any] = interpolate(read_yaml(path), read_env_file(env_file))
    return rendered


def service_mounts(compose: Mapping[str, Any], service: str) -> dict[str, str]:
    """Container path -> host path of a service's short-syntax bind mounts and volumes."""
    return {
        target: source
        for mount in compose["services"][service].get("volumes") or []
        for source, target, *_ in [mount.split(":")]
    }


def check_compose(path: Path, env_file: Path) -> Problems:
    try:
        model = render_compose(path, env_file)
    except Unreadable as exc:
        return [str(exc)]
    except ValueError as exc:  # a required variable is missing
        return [f"{path.name}: {exc}"]
    problems = schema_errors(model, compose_schema())
    services: dict[str, Any] = model.get("services") or {}
    volumes = set(model.get("volumes") or {})
    for name, service in services.items():
        depends = service.get("depends_on") or []
        for dependency in depends if isinstance(depends, list) else list(depends):
            if dependency not in services:
                problems.append(f"service {name} depends on unknown service {dependency}")
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith((".", "/")):
                if not (path.parent / source).exists():
                    problems.append(f"service {name} mounts missing {source}")
            elif source and source not in volumes:
                problems.append(f"service {name} uses undeclared volume {source}")
        build = service.get("build")
        if isinstance(build, dict):
            context = path.parent / build.get("context", ".")
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"service {name}: no Dockerfile at {build}")
    return problems
