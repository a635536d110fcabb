"""Telemetry of ``email:deliver``: who the mail went to, without saying who.

The task's span (``run/email:deliver``) gets the recipient *domains* and a SHA-256 of each
normalised (lower-cased) address, ``email.recipient.hashes``: enough to find every attempt for
one address ("did alice's mail go out?" is answered by hashing her address), never the address.
The exporter's redaction (:mod:`project.telemetry.redaction`) is a second line of defence for
addresses quoted in SMTP replies; these attributes never need it.

Counters by ``email.domain`` (one count per distinct recipient domain of a message):
``kit.email.sent``, ``kit.email.failed`` (for good: archived), ``kit.email.retried`` (will be
tried again after an SMTP error) and ``kit.email.throttled`` (waited for the rate limit).
Instruments are proxies created at import, so they report to whatever provider the process
sets up later (a prefork child sets its own after ``fork``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from tasks.email.validation import MailRequest

__all__ = ["address_hash", "count", "describe"]

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


def address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def describe(request: MailRequest, **extra: AttributeValue) -> None:
    """Put the request's safe description on the current span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes: dict[str, AttributeValue] = {
        "email.recipient.domains": list(request.domains),
        "email.recipient.hashes": [address_hash(box.address) for box in request.recipients],
        "email.recipient.count": len(request.recipients),
        "email.attachment.count": len(request.attachments),
    }
    if request.template is not None:
        attributes["email.template"] = request.template
    span.set_attributes({**attributes, **extra})


def count(outcome: str, domains: Iterable[str]) -> None:
    counter = _COUNTERS[outcome]
    for domain in sorted(set(domains)):
        counter.add(1, {"email.domain": domain})
