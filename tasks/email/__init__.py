"""E-mail for the ``email:deliver`` task: plain functions the thin task in ``tasks/email.py``
calls, each testable without a worker.

* :mod:`.validation`: the task's arguments, checked at enqueue time and again in the worker;
* :mod:`.templates`: Jinja2 subject and bodies (strict, HTML autoescaped);
* :mod:`.message`: the MIME message, built with the standard library's ``SMTP`` policy;
* :mod:`.smtp`: one SMTP transaction, its failures classified as transient or permanent;
* :mod:`.ratelimit`: token buckets per recipient domain or global, in Redis;
* :mod:`.delivery`: the whole delivery, at most once per Message-ID;
* :mod:`.telemetry`: span attributes (domains, address hashes) and per-domain counters.
"""

from __future__ import annotations

from tasks.email.delivery import DeliveryUnconfirmedError
from tasks.email.validation import MailRequest, parse_deliver

__all__ = ["DeliveryUnconfirmedError", "MailRequest", "parse_deliver"]
