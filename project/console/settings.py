"""``kit web`` / the console under ``kit up``: where it listens, who may log in, what it offers.

Credentials: ``KIT_WEB_BASIC_AUTH`` if set, else Flower's ``FLOWER_BASIC_AUTH`` (``kit up``
passes its own, generated when unset, to both), as ``user:password`` pairs separated by
commas. With none configured, :mod:`project.cli.web` generates a password for the run on a
loopback address and refuses to start on any other: the console never serves without
authentication.
"""

from __future__ import annotations

from dataclasses import dataclass

from project.config.env import Env
from project.errors import ConfigError

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_PORT", "ConsoleSettings", "parse_credentials"]

DEFAULT_ADDRESS = "127.0.0.1"  # like FLOWER_ADDRESS under kit up: reachable from this host only
DEFAULT_PORT = 5556  # next to Flower's 5555
CREDENTIALS_ACCEPTS = "user:password pairs separated by commas, neither part empty"


def parse_credentials(name: str, raw: str | None) -> tuple[tuple[str, str], ...]:
    """``user:pass[,user2:pass2]`` as pairs; the value never appears in the error."""
    if raw is None:
        return ()
    pairs = []
    for item in raw.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ConfigError(name, "<hidden>", CREDENTIALS_ACCEPTS)
        pairs.append((user, password))
    return tuple(pairs)


@dataclass(frozen=True)
class ConsoleSettings:
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    #: (user, password) pairs; empty: none configured (see the module docstring).
    credentials: tuple[tuple[str, str], ...] = ()
    #: The variable the credentials came from, for messages (never the value).
    credentials_source: str = ""
    #: True: no action is offered (buttons not rendered) nor accepted (HTTP 403).
    read_only: bool = False
    #: e.g. ``https://jaeger.example/trace/{trace_id}``: a task's trace id links there.
    trace_url_template: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> ConsoleSettings:
        source, raw = "KIT_WEB_BASIC_AUTH", env.optional_text("KIT_WEB_BASIC_AUTH")
        if raw is None:
            source, raw = "FLOWER_BASIC_AUTH", env.optional_text("FLOWER_BASIC_AUTH")
        template = env.optional_text("KIT_TRACE_URL_TEMPLATE")
        if template is not None and "{trace_id}" not in template:
            raise ConfigError(
                "KIT_TRACE_URL_TEMPLATE",
                template,
                "a URL containing {trace_id}, e.g. https://jaeger.example/trace/{trace_id}",
            )
        return cls(
            address=env.text("KIT_WEB_ADDRESS", DEFAULT_ADDRESS),
            port=env.integer("KIT_WEB_PORT", DEFAULT_PORT, minimum=1, maximum=65535),
            credentials=parse_credentials(source, raw),
            credentials_source=source if raw is not None else "",
            read_only=env.boolean("KIT_WEB_READ_ONLY", False),
            trace_url_template=template,
        )
