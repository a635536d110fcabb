"""What every validator shares: where deploy/ is, how its files are read, how problems are told.

Each check returns a list of problems (empty when the file is right) instead of raising, so a
test can assert both ways: ``[]`` for the shipped file, a named problem for a broken copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"

Problems = list[str]
# libyaml's parser when PyYAML has it (ten times faster: the broken copies re-read deploy/).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Unreadable(ValueError):
    """A file that does not parse, or does not have the shape its reader expects."""


def load_yaml_documents(path: Path) -> list[Any]:
    """Every document of a YAML file (empty ones dropped); yaml.YAMLError on bad syntax."""
    with path.open() as handle:
        return [doc for doc in yaml.load_all(handle, Loader=_LOADER) if doc is not None]


def load_yaml(path: Path) -> Any:
    documents = load_yaml_documents(path)
    if len(documents) != 1:
        raise ValueError(f"{path}: expected one YAML document, found {len(documents)}")
    return documents[0]


def read_yaml(path: Path) -> Any:
    """load_yaml, with every way of failing turned into :class:`Unreadable` naming the file,
    so a check reports an unreadable file as one problem instead of a traceback."""
    try:
        return load_yaml(path)
    except (yaml.YAMLError, ValueError, OSError) as exc:
        raise Unreadable(f"{path.name}: {exc}") from exc


def check_parses(path: Path) -> Problems:
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            load_yaml_documents(path)
    except (yaml.YAMLError, ValueError) as exc:
        return [f"{path.name}: does not parse: {exc}"]
    return []


def schema_errors(document: Any, schema: Mapping[str, Any]) -> Problems:
    """Every JSON-schema violation, as `path: message`, in document order."""
    from jsonschema.validators import validator_for

    validator = validator_for(schema)(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    ]


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float:
    """A Compose or Prometheus duration ("1m30s", "45s", "2m") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for ``seconds``, in whole milliseconds at least."""
    millis = max(1, round(seconds * 1000))
    for unit, factor in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % factor == 0:
            return f"{millis // factor}{unit}"
    return f"{millis}ms"
