"""Redis URLs, parsed and shown in one place: which kind a URL is, what a Sentinel URL names,
the results' default database, and a form safe for logs.

Accepted: ``redis://``, ``rediss://`` (TLS), ``redis+socket://`` and Sentinel addresses joined
by ``;`` (``sentinel://:pw@s1:26379;sentinel://:pw@s2:26379/0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "REDIS_ACCEPTS",
    "SentinelTarget",
    "is_sentinel",
    "next_database",
    "problem",
    "redacted",
    "uses_tls",
]

SCHEMES = ("redis", "rediss", "redis+socket", "sentinel")
#: What a Redis URL setting accepts, for error messages.
REDIS_ACCEPTS = (
    "a URL with scheme redis://, rediss:// or redis+socket://, "
    "e.g. redis://:password@127.0.0.1:6379/0, or Sentinel addresses joined by ';', "
    "e.g. sentinel://:password@s1:26379;sentinel://:password@s2:26379/0"
)
_CREDENTIALS = re.compile(r"//[^@/;]*@")


def redacted(url: str) -> str:
    """``url`` (or ';'-joined URLs) with user and password masked, for logs and messages.

    Works on malformed URLs too (an unparsable port, say): error messages show them."""
    return _CREDENTIALS.sub("//***@", url)


def uses_tls(url: str) -> bool:
    return urlsplit(url).scheme == "rediss"


def is_sentinel(url: str) -> bool:
    return urlsplit(url.split(";")[0]).scheme == "sentinel"


def problem(url: str) -> str | None:
    """Why ``url`` is not an accepted Redis URL, or None when it is."""
    urls = url.split(";")
    if len(urls) > 1 and {urlsplit(u).scheme for u in urls} != {"sentinel"}:
        return " (only Sentinel URLs are joined)"
    for part in urls:
        try:
            parts = urlsplit(part)
            parts.port  # noqa: B018 - raises ValueError on a non-numeric port
        except ValueError:
            return ""
        if parts.scheme not in SCHEMES:
            return ""
        if parts.scheme != "redis+socket" and not parts.hostname:
            return ""
        path = parts.path.strip("/")
        if parts.scheme != "redis+socket" and path and not path.isdigit():
            return " (the path is a database number)"
    return None


def next_database(url: str) -> str:
    """The same server as ``url`` with the next database number: results beside the broker."""
    if ";" in url:  # Sentinel addresses: the database number is on each
        return ";".join(next_database(part) for part in url.split(";"))
    parts = urlsplit(url)
    if parts.scheme == "redis+socket":
        return url  # a socket URL names no database number; share it
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    return urlunsplit(parts._replace(path=f"/{(db + 1) % 16}"))


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``sentinel://...;sentinel://...`` URL names: the sentinels, and the primary's
    password and database (taken from the first URL)."""

    addresses: list[tuple[str, int]]
    password: str | None
    db: int

    @classmethod
    def parse(cls, url: str) -> SentinelTarget:
        parts = [urlsplit(part) for part in url.split(";")]
        first = parts[0]
        path = first.path.strip("/")
        return cls(
            addresses=[(p.hostname or "127.0.0.1", p.port or 26379) for p in parts],
            password=unquote(first.password) if first.password else None,
            db=int(path) if path.isdigit() else 0,
        )
