"""Typed accessors over an environment mapping, for :mod:`project.config`.

Each accessor returns the parsed value or raises :class:`~project.errors.ConfigError` naming the
variable and what it accepts; an empty value counts as unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from project.broker import urls
from project.errors import ConfigError

__all__ = ["Env"]

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_EXAMPLE_WEIGHTS = "critical=6,default=3,low=1"
Number = TypeVar("Number", int, float)


class Env:
    """Typed accessors over an environment mapping; each failure names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def _items(self, name: str) -> tuple[str, tuple[str, ...]]:
        """A comma-separated variable as it was set ("" when unset) and its non-empty items."""
        raw = self._raw(name) or ""
        return raw, tuple(item.strip() for item in raw.split(",") if item.strip())

    def is_set(self, name: str) -> bool:
        """Whether the variable is in the environment at all: set to "" counts (a list
        variable set empty means an empty list, not its default)."""
        return name in self._environ

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def optional_text(self, name: str) -> str | None:
        return self._raw(name)

    def names_with_prefix(self, prefix: str) -> list[str]:
        return [n for n in self._environ if n == prefix or n.startswith(prefix + "_")]

    def optional_file(self, name: str) -> str:
        """A path to a readable file, or "" when unset."""
        raw = self._raw(name)
        if raw is None:
            return ""
        if not os.path.isfile(raw) or not os.access(raw, os.R_OK):
            raise ConfigError(name, raw, "the path of a readable file (PEM)")
        return raw

    def paths(self, name: str) -> tuple[str, ...]:
        raw, paths = self._items(name)
        if any("\x00" in p for p in paths):
            raise ConfigError(name, raw, "comma-separated directory paths")
        return paths

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(name, raw, "one of " + ", ".join(choices))
        return raw.lower()

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        return self._bounded(name, default, int, "a whole number", minimum, maximum)

    def optional_integer(self, name: str, *, minimum: int) -> int | None:
        if self._raw(name) is None:
            return None
        return self.integer(name, minimum, minimum=minimum)

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        return self._bounded(name, default, float, "a number", minimum, maximum)

    def _bounded(
        self,
        name: str,
        default: Number,
        parse: Callable[[str], Number],
        kind: str,
        minimum: float | None,
        maximum: float | None,
    ) -> Number:
        """``parse`` of the variable, within the bounds (NaN is within none), or ``default``."""
        raw = self._raw(name)
        if raw is None:
            return default
        accepts = _range_text(kind, minimum, maximum)
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(name, raw, accepts) from None
        if (
            value != value
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
        ):
            raise ConfigError(name, raw, accepts)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, raw, "one of 1/0, true/false, yes/no, on/off")

    def redis_url(self, name: str, default: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        why = urls.problem(raw)
        if why is not None:  # the value shown is redacted: error messages end up in logs
            raise ConfigError(name, urls.redacted(raw), urls.REDIS_ACCEPTS + why)
        return raw

    def weights(self, name: str, default: str) -> dict[str, int]:
        raw = self._raw(name) or default
        accepts = (
            "comma-separated queue=weight pairs, queue names of letters, digits, '_', '-', "
            "'.' or ':', whole-number weights of at least 1, and a 'default' queue among them, "
            f"e.g. {_EXAMPLE_WEIGHTS}"
        )
        weights: dict[str, int] = {}
        for item in raw.split(","):
            queue, sep, weight = item.partition("=")
            queue = queue.strip()
            if not sep or not _QUEUE_NAME.fullmatch(queue) or queue in weights:
                raise ConfigError(name, raw, accepts)
            try:
                weights[queue] = int(weight.strip())
            except ValueError:
                raise ConfigError(name, raw, accepts) from None
            if weights[queue] < 1:
                raise ConfigError(name, raw, accepts)
        if "default" not in weights:
            raise ConfigError(name, raw, accepts)
        return weights

    def names(self, name: str) -> tuple[str, ...]:
        raw, modules = self._items(name)
        if not all(piece.isidentifier() for module in modules for piece in module.split(".")):
            raise ConfigError(
                name, raw, "comma-separated dotted module names, e.g. myapp.tasks,other.jobs"
            )
        return modules

    def rate(self, name: str) -> tuple[int, float] | None:
        """``N/s``, ``N/m`` or ``N/h`` (``N`` at least 1) as (N, seconds); unset: no limit."""
        raw = self._raw(name)
        if raw is None:
            return None
        count, sep, unit = raw.replace(" ", "").partition("/")
        seconds = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(unit.lower())
        if not sep or seconds is None or not count.isdigit() or int(count) < 1:
            raise ConfigError(name, raw, "messages per period: N/s, N/m or N/h, e.g. 100/m")
        return int(count), seconds

    def basic_auth(self, name: str) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        user, sep, password = raw.partition(":")
        if not sep or not user or not password:
            raise ConfigError(name, "<hidden>", "user:password with neither part empty")
        return raw


def _range_text(kind: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{kind} of at least {minimum}"
    return kind
