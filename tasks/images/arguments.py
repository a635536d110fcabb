"""Typed, named access to a task's keyword arguments, for :mod:`.validation`.

Each accessor checks one argument and raises :class:`~project.errors.ValidationError` naming
the task, the argument, the value and what it accepts; :meth:`Arguments.done` then refuses any
argument nobody read, so a misspelt option is an error instead of being ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from project.errors import ValidationError
from project.storage import clean_path

__all__ = ["Arguments"]


class Arguments:
    """Typed, named access to a task's keyword arguments; refuses any it did not read."""

    def __init__(self, task: str, kwargs: Mapping[str, Any]) -> None:
        self.task = task
        self.kwargs = dict(kwargs)
        self.read: set[str] = set()

    def fail(self, name: str, accepts: str) -> ValidationError:
        value = repr(self.kwargs.get(name))[:80]
        return ValidationError(f"{self.task}: {name}={value} is invalid; it accepts {accepts}")

    def get(self, name: str) -> Any:
        self.read.add(name)
        return self.kwargs.get(name)

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(name, f"a whole number from {low} to {high}")
        return value

    def number(self, name: str, low: float, high: float, default: float | None) -> float | None:
        value = self.get(name)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low < value <= high
        ):
            raise self.fail(name, f"a number greater than {low} and at most {high}")
        return float(value)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(name, "true or false")
        return value

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self.get(name)
        if value is None:
            return default
        if value not in choices:
            raise self.fail(name, "one of " + ", ".join(choices))
        return str(value)

    def text(self, name: str, max_length: int) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > max_length:
            raise self.fail(name, f"a non-empty string of at most {max_length} characters")
        return value

    def color(self, name: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
        value = self.get(name)
        if value is None:
            return default
        try:
            if not isinstance(value, str) or len(value) > 32:
                raise ValueError(value)
            from PIL import ImageColor  # here: a producer checks arguments without Pillow

            rgb = ImageColor.getrgb(value)
        except ValueError:
            raise self.fail(name, "a colour name or #rrggbb") from None
        return (rgb[0], rgb[1], rgb[2])

    def path(self, name: str, *, required: bool) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                raise ValidationError(f"{self.task}: {name} is required")
            return None
        return clean_path(value, f"{self.task}: {name}")

    def done(self) -> None:
        unknown = sorted(set(self.kwargs) - self.read)
        if unknown:
            raise ValidationError(
                f"{self.task}: unknown argument(s) {', '.join(unknown)}; it accepts "
                + ", ".join(sorted(self.read))
            )
