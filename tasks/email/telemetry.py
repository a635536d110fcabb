"""Telemetry of ``email:deliver``: who the mail went to, without saying who.

The task's span (``run/email:deliver``) gets the recipient *domains*, their count and, when
``KIT_TELEMETRY_HASH_KEY`` is set, an HMAC-SHA256 of each normalised (lower-cased) address,
``email.recipient.hashes``: enough to find every attempt for one address ("did alice's mail go
out?" is answered by keying her address), never the address. Without a key there is no hash at
all: a plain SHA-256 of an address is reversed by hashing a list of known addresses.
The exporter's redaction (:mod:`project.telemetry.redaction`) is a second line of defence for
addresses quoted in SMTP replies; these attributes never need it.

Counters by ``email.domain`` (one count per distinct recipient domain of a message), the domain
named only when ``KIT_TELEMETRY_EMAIL_DOMAINS`` lists it, else ``other``: a metric attribute
taking any domain a task is given would make one series per domain, without bound.
``kit.email.sent``, ``kit.email.failed`` (for good: archived), ``kit.email.retried`` (will be
tried again after an SMTP error) and ``kit.email.throttled`` (waited for the rate limit).
Instruments are proxies created at import, so they report to whatever provider the process
sets up later (a prefork child sets its own after ``fork``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from project.telemetry.settings import TelemetrySettings, load_telemetry_settings
from tasks.email.validation import MailRequest

__all__ = ["OTHER_DOMAIN", "address_hash", "count", "describe", "metric_domain"]

OTHER_DOMAIN = "other"
_settings: tuple[int, TelemetrySettings] | None = None

_meter = metrics.get_meter("tasks.email")
_COUNTERS = {
    outcome: _meter.create_counter(
        f"kit.email.{outcome}", unit="{message}", description=description
    )
    for outcome, description in (
        ("sent", "Messages the SMTP server accepted, per recipient domain"),
        ("failed", "Messages that failed for good (archived), per recipient domain"),
        ("retried", "Attempts that will be retried after an SMTP error, per recipient domain"),
        ("throttled", "Attempts that waited for the rate limit, per recipient domain"),
    )
}


def _telemetry_settings() -> TelemetrySettings:
    """Read once per process (a prefork child reads its own environment after ``fork``)."""
    global _settings
    if _settings is None or _settings[0] != os.getpid():
        _settings = (os.getpid(), load_telemetry_settings())
    return _settings[1]


def address_hash(address: str, key: bytes | None = None) -> str | None:
    """HMAC-SHA256 of the normalised address under ``key`` (KIT_TELEMETRY_HASH_KEY); ``None``
    without a key."""
    key = key if key is not None else _telemetry_settings().hash_key
    if not key:
        return None
    normalised = address.strip().lower().encode("utf-8")
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()


def metric_domain(domain: str, allowed: frozenset[str] | None = None) -> str:
    """The domain when KIT_TELEMETRY_EMAIL_DOMAINS lists it, else ``other``."""
    allowed = allowed if allowed is not None else _telemetry_settings().email_domains
    domain = domain.strip().lower()
    return domain if domain in allowed else OTHER_DOMAIN


def describe(request: MailRequest, **extra: AttributeValue) -> None:
    """Put the request's safe description on the current span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes: dict[str, AttributeValue] = {
        "email.recipient.domains": list(request.domains),
        "email.recipient.count": len(request.recipients),
        "email.attachment.count": len(request.attachments),
    }
    hashes = [address_hash(box.address) for box in request.recipients]
    if hashes and all(h is not None for h in hashes):
        attributes["email.recipient.hashes"] = [h for h in hashes if h is not None]
    if request.template is not None:
        attributes["email.template"] = request.template
    span.set_attributes({**attributes, **extra})


def count(outcome: str, domains: Iterable[str]) -> None:
    counter = _COUNTERS[outcome]
    for domain in sorted({metric_domain(d) for d in domains}):
        counter.add(1, {"email.domain": domain})
