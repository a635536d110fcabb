"""Who is asking: HTTP Basic credentials, and whether the request comes from a browser.

Passwords are compared with :func:`hmac.compare_digest` (against every configured pair, so
the time taken does not say which user name exists).

CSRF: a browser sends a site's Basic credentials by itself, also with a request another site
made it send, so every write from a browser must carry the page's token (Tornado's
``_xsrf`` cookie and form field or ``X-XSRFToken`` header). A script (curl, requests) sends
none of the headers a browser adds: no ``Cookie``, no ``Origin``, no ``Sec-Fetch-*``; it needs
no token. A request with any of them is a browser's, whatever its credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping

__all__ = ["BROWSER_HEADERS", "Credentials", "generated", "is_browser"]

#: Headers browsers add to cross-site and same-site writes (and scripts do not).
BROWSER_HEADERS = ("Cookie", "Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode")


class Credentials:
    """The configured (user, password) pairs."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        if not pairs:
            raise ValueError("the console needs at least one user:password pair")
        self._pairs = tuple((u.encode(), p.encode()) for u, p in pairs)

    def user(self, authorization: str | None) -> str | None:
        """The user name of a valid ``Authorization: Basic ...`` header, else None."""
        if not authorization:
            return None
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(b":")
        if not sep:
            return None
        found = None
        for known_user, known_password in self._pairs:
            # Both compared for every pair: no early exit tells a user name apart.
            same_user = hmac.compare_digest(user, known_user)
            same_password = hmac.compare_digest(password, known_password)
            if same_user and same_password:
                found = known_user
        return found.decode(errors="replace") if found is not None else None


def generated() -> tuple[str, str]:
    """A user and a random password for one run of a console nobody configured."""
    return "admin", secrets.token_urlsafe(12)


def is_browser(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in BROWSER_HEADERS)
