"""Jinja2 templates for ``email:deliver``: subject, text and HTML bodies from a name and context.

A template ``welcome`` is up to three files in ``KIT_MAIL_TEMPLATE_DIR``: ``welcome.subject.txt``
(unless the task gives ``subject``), ``welcome.txt`` and/or ``welcome.html`` (at least one).
HTML is autoescaped (``select_autoescape``): context values are user data and must not become
markup; the text files are not, since escaping would corrupt them.

Every failure is a :class:`~project.errors.PermanentError`: a missing template, an undefined
variable (``StrictUndefined``: a message saying "Hello ," is worse than no message) or a syntax
error fails the same way on every attempt, so it is archived at once with the reason. A subject
that renders to several lines is refused too: context values would otherwise inject headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2

from project.errors import PermanentError

__all__ = ["Rendered", "render"]


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str | None
    html: str | None


@lru_cache(maxsize=4)
def _environment(directory: str) -> jinja2.Environment:
    """One environment per directory and process: compiled templates are cached in it."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(
    directory: str | None, name: str, context: Mapping[str, Any], *, need_subject: bool
) -> Rendered:
    if directory is None:
        raise PermanentError(
            f"email:deliver: template {name!r} requested but KIT_MAIL_TEMPLATE_DIR is not set"
        )
    env = _environment(directory)
    subject = _render(env, f"{name}.subject.txt", context, required=need_subject)
    text = _render(env, f"{name}.txt", context, required=False)
    html = _render(env, f"{name}.html", context, required=False)
    if text is None and html is None:
        raise PermanentError(
            f"email:deliver: template {name!r} not found: neither {name}.txt nor {name}.html "
            "exists in KIT_MAIL_TEMPLATE_DIR"
        )
    if subject is not None:
        subject = subject.strip()
        if "\n" in subject or "\r" in subject:
            raise PermanentError(
                f"email:deliver: template {name}.subject.txt rendered to several lines; a "
                "subject is one line (a context value with a newline would inject headers)"
            )
    return Rendered(subject, text, html)


def _render(
    env: jinja2.Environment, filename: str, context: Mapping[str, Any], *, required: bool
) -> str | None:
    try:
        template = env.get_template(filename)
    except jinja2.TemplateNotFound:
        if required:
            raise PermanentError(
                f"email:deliver: template {filename!r} not found in KIT_MAIL_TEMPLATE_DIR"
            ) from None
        return None
    except jinja2.TemplateSyntaxError as exc:
        raise PermanentError(
            f"email:deliver: template {filename!r} line {exc.lineno}: {exc.message}"
        ) from None
    try:
        return template.render(dict(context))
    except jinja2.UndefinedError as exc:
        raise PermanentError(f"email:deliver: template {filename!r}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise PermanentError(f"email:deliver: template {filename!r}: {exc}") from None
