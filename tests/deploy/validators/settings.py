"""The kit's settings the deployments ship, against the defaults of the README's table.

A shipped ``KIT_*`` value either is the README's default or is a declared deviation with its
reason (:data:`DEVIATIONS`): a deployment must not quietly undo a default the README promises
(``KIT_VISIBILITY_TIMEOUT=3600`` brought a killed worker's tasks back after an hour, not one
lease). Every place a value is shipped is read: ``.env.example``, compose's own
``${VAR:-fallback}`` values (used when ``.env`` lacks the variable), the rendered ConfigMaps of
both kustomizations, literal ``env`` values of their containers, and the image's ``ENV``.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.validators.common import Problems
from tests.deploy.validators.compose import read_env_file
from tests.deploy.validators.kustomize import render_kustomization

__all__ = ["DEVIATIONS", "check_shipped_settings", "readme_defaults", "shipped_settings"]

#: Shipped values that differ from the README's default on purpose, and why.
DEVIATIONS: dict[str, tuple[str, str]] = {
    "KIT_CONCURRENCY": (
        "4",
        "two processes per CPU of the containers' limit (2), the kit's default rule; the default "
        "itself would count the node's CPUs, not the limit",
    ),
    "KIT_STATE_DIR": ("/var/lib/celery-kit", "the image's writable home for the kit user"),
}
#: Not the kit's settings: where the deployment's Redis is (an address, not a tunable with a
#: default to keep), and compose's own variables.
NOT_SETTINGS = frozenset({"REDIS_URL", "KIT_RESULT_BACKEND", "KIT_IMAGE_TAG"})

_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|", re.MULTILINE)
_FALLBACK = re.compile(r"\$\{(KIT_[A-Z0-9_]+):-([^}]*)\}")
_DOCKER_ENV = re.compile(r"\b(KIT_[A-Z0-9_]+)=(\S+)")


def readme_defaults(readme: Path) -> dict[str, str]:
    """Variable -> its default in the README's configuration table: the first `code` of the
    default cell, or "" when the cell names none ("(none)", "number of CPUs")."""
    defaults = {}
    for name, cell in _ROW.findall(readme.read_text()):
        code = re.search(r"`([^`]*)`", cell)
        defaults[name] = code.group(1) if code else ""
    return defaults


def shipped_settings(deploy: Path) -> list[tuple[str, str, str]]:
    """(where, variable, value) for every ``KIT_*`` value a deployment file sets."""
    found = [
        (".env.example", name, value)
        for name, value in read_env_file(deploy / ".env.example").items()
        if name.startswith("KIT_")
    ]
    found += [
        ("compose.yaml fallback", name, value)
        for name, value in _FALLBACK.findall((deploy / "compose.yaml").read_text())
    ]
    for overlay in ("k8s", "k8s-hpa"):
        for resource in render_kustomization(deploy / overlay):
            if resource.get("kind") == "ConfigMap":
                where = f"{overlay} ConfigMap {resource['metadata']['name']}"
                found += [(where, n, str(v)) for n, v in (resource.get("data") or {}).items()]
            pod = resource.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                where = f"{overlay} {resource['kind']} {resource['metadata']['name']}"
                found += [
                    (where, e["name"], str(e["value"]))
                    for e in container.get("env", [])
                    if "value" in e
                ]
    found += [
        ("Dockerfile ENV", name, value)
        for line in (deploy / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
        for name, value in _DOCKER_ENV.findall(line)
    ]
    return [(w, n, v) for w, n, v in found if n.startswith("KIT_") and n not in NOT_SETTINGS]


def _same(shipped: str, default: str) -> bool:
    if shipped.strip().lower() == default.strip().lower():
        return True
    try:
        return float(shipped) == float(default)
    except ValueError:
        return False


def check_shipped_settings(deploy: Path, readme: Path) -> Problems:
    defaults = readme_defaults(readme)
    problems = []
    for where, name, value in shipped_settings(deploy):
        if name not in defaults:
            problems.append(f"{where}: {name} is not in the README's configuration table")
        elif name in DEVIATIONS:
            if value != DEVIATIONS[name][0]:
                problems.append(
                    f"{where}: {name}={value!r}, but the declared deviation is "
                    f"{DEVIATIONS[name][0]!r} ({DEVIATIONS[name][1]})"
                )
        elif not _same(value, defaults[name]):
            problems.append(
                f"{where}: {name}={value!r} differs from the README's default "
                f"{defaults[name]!r}; ship the default or declare why not"
            )
    return problems
