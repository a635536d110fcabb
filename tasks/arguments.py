"""Typed, named access to a catalog task's arguments: the one parser every catalog uses.

A task's arguments are parsed twice, by the producer before publishing (a bad payload is a
:class:`~project.errors.ValidationError` in the caller's hands, nothing enqueued) and by the
worker on what it received (a message may come from anywhere). Both sides call the same parser,
built on :class:`Arguments`: each accessor checks one argument and raises naming the task, the
argument, the value and what it accepts, and :meth:`Arguments.done` refuses any argument nobody
read, so a misspelt option is an error instead of being ignored.

Importable without Pillow or Jinja2 (a producer checks arguments without the catalog's
dependencies): :meth:`Arguments.color` imports Pillow only when it runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from celery.canvas import Signature

from project.errors import ValidationError
from project.storage import clean_path

__all__ = ["Arguments", "chain_steps", "check_text", "refuse_controls"]

#: A default that is a number, or None (then the argument may stay unset).
Default = TypeVar("Default", float, None)


def chain_steps(app: Any, options: Mapping[str, Any]) -> Iterator[Signature]:
    """The later steps of a chain whose first task is being published, as signatures: Celery
    hands them to ``apply_async`` in ``options["chain"]`` (in reverse order, maybe as dicts) and
    publishes them from the worker later, unchecked, so a catalog task checks them now."""
    for step in options.get("chain") or ():
        yield Signature.from_dict(step, app=app) if isinstance(step, dict) else step


def refuse_controls(text: str, label: str, *, newlines: bool = False) -> None:
    """Refuse NUL and other control characters (tabs pass), and CR or LF unless ``newlines``:
    a line break in a header-bound value is header injection, refused rather than cleaned, since
    it means the payload was built from untrusted input without care."""
    for ch in text:
        if ch in "\r\n" and not newlines:
            raise ValidationError(f"{label} contains CR or LF (header injection refused)")
        if (ord(ch) < 32 and ch not in "\t\r\n") or ord(ch) == 127:
            raise ValidationError(f"{label} contains a NUL or control character")


def check_text(
    value: object, label: str, max_length: int, *, multiline: bool = True, blank: bool = False
) -> str | None:
    """A string of at most ``max_length`` characters without control characters (see
    :func:`refuse_controls`), or None when unset; ``label`` names it in errors."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{label} must be a string")
    if not blank and not value.strip():
        raise ValidationError(f"{label} must not be empty")
    if len(value) > max_length:  # first: a huge value is refused without a scan
        raise ValidationError(f"{label} is longer than {max_length} characters")
    refuse_controls(value, label, newlines=multiline)
    return value


class Arguments:
    """Typed, named access to a task's keyword arguments; refuses any it did not read."""

    def __init__(self, task: str, kwargs: Mapping[str, Any]) -> None:
        self.task = task
        self.kwargs = dict(kwargs)
        self.read: set[str] = set()

    def error(self, message: str) -> ValidationError:
        return ValidationError(f"{self.task}: {message}")

    def fail(self, name: str, accepts: str) -> ValidationError:
        value = repr(self.kwargs.get(name))[:80]
        return self.error(f"{name}={value} is invalid; it accepts {accepts}")

    def keywords_only(self, positional: Sequence[Any], at_most: int = 0) -> tuple[Any, ...]:
        """The positional arguments, of which a task takes at most ``at_most`` (a chained
        step's previous result)."""
        if len(positional) > at_most:
            raise ValidationError(f"{self.task} takes keyword arguments only")
        return tuple(positional)

    def only(self, names: Iterable[str]) -> None:
        """Refuse now any argument outside ``names``: a misspelt name is then the first error
        reported, before the checks of the arguments it leaves unset."""
        self.read.update(names)
        self.done()

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

    def number(
        self,
        name: str,
        default: Default,
        *,
        above: float = -math.inf,
        at_least: float = -math.inf,
        at_most: float = math.inf,
        kind: str = "a number",
    ) -> float | Default:
        """A finite number within the bounds given (``above`` excludes its bound)."""
        value = self.get(name)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not (value > above and value >= at_least and value <= at_most)
        ):
            bounds = [
                f"{words} {bound}"
                for words, bound in (
                    ("greater than", above),
                    ("of at least", at_least),
                    ("at most", at_most),
                )
                if math.isfinite(bound)
            ]
            raise self.fail(name, " ".join([kind, " and ".join(bounds)]).strip())
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

    def text(
        self, name: str, max_length: int, *, multiline: bool = True, blank: bool = False
    ) -> str | None:
        """See :func:`check_text`."""
        label = f"{self.task}: {name}"
        return check_text(self.get(name), label, max_length, multiline=multiline, blank=blank)

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
                raise self.error(f"{name} is required")
            return None
        return clean_path(value, f"{self.task}: {name}")

    def done(self) -> None:
        unknown = sorted(set(self.kwargs) - self.read)
        if unknown:
            raise self.error(
                f"unknown argument(s) {', '.join(unknown)}; it accepts "
                + ", ".join(sorted(self.read))
            )
