"""The email catalog: ``email:deliver``, one message over SMTP.

A thin task: it parses its keyword arguments (:mod:`tasks.email.validation`), calls
:func:`tasks.email.delivery.deliver`, and turns the outcome into the kit's retry policy:

* connection errors, timeouts and 4xx replies are ``TransientError``: retried with backoff;
* 5xx replies, bad templates and missing attachments are ``PermanentError``: archived at once,
  the server's reply in the error;
* a message whose acceptance is unknown (the connection dropped after DATA) is archived as
  ``DeliveryUnconfirmedError``, never re-sent; one already accepted is never sent again;
* a rate-limited message is retried after the wait its reserved slot needs, so it waits in the
  broker, not in a worker process (the retry does not use up ``max_retries``).

Arguments are checked before publishing as the image catalog does (:mod:`tasks.images.tasks`): a
producer's ``delay``/``apply_async`` raises :class:`~project.errors.ValidationError` with
nothing enqueued. Celery's own publishes skip that check: a retry (``retries`` in its options;
the durable-delay forwarder re-publishes those with their options) re-sends arguments that
passed already, and a chain step sent by the worker (``parent_id``) was checked with the chain's
first task. The worker checks every message again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from project import kit_task
from project.config import current
from project.errors import ValidationError
from project.lifecycle.task import KitTask
from project.storage import default_storage
from tasks.arguments import chain_steps
from tasks.email import telemetry
from tasks.email.delivery import Ledger, deliver
from tasks.email.ratelimit import RateLimiter, Throttled
from tasks.email.settings import MailSettings
from tasks.email.validation import MailRequest, parse_deliver

__all__ = ["EmailTask", "deliver_email"]

TASK_NAME = "email:deliver"


def _parse(args: Sequence[Any], kwargs: Mapping[str, Any]) -> MailRequest:
    return parse_deliver(tuple(args or ()), dict(kwargs or {}), current(MailSettings).max_bytes)


class EmailTask(KitTask):
    """``email:deliver``: arguments validated before they are published."""

    default_queue: ClassVar[str | None] = "default"

    def parse(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> MailRequest:
        return _parse(args, kwargs)

    def check_arguments(self, args: Any, kwargs: Any, options: dict[str, Any]) -> None:
        self.parse(args or (), kwargs or {})
        later = [s for s in chain_steps(self.app, options) if s.get("task") == TASK_NAME]
        for step in later:  # immutable (.si), with valid arguments
            if not step.get("immutable"):
                raise ValidationError(
                    f"{TASK_NAME} in a chain must be immutable (.si): it takes no previous result"
                )
            self.parse(step.args, step.kwargs)


@kit_task(name=TASK_NAME, base=EmailTask, bind=True, default_queue="default")
def deliver_email(self: EmailTask, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Send one message: to, subject, body (and/or html, or a template), cc, bcc, reply_to,
    sender, headers, attachments."""
    request = self.parse(args, kwargs)
    settings = current(MailSettings)
    client = self.kit.redis
    telemetry.describe(request)
    try:
        result = deliver(
            request,
            task_id=self.request.id,
            settings=settings,
            storage=default_storage(),
            ledger=Ledger(client, settings.dedup_ttl),
            limiter=RateLimiter(client, settings.rate_limit, settings.rate_scope),
        )
    except Throttled as throttled:
        telemetry.count("throttled", request.domains)
        telemetry.describe(request, **{"email.outcome": "throttled"})
        retries = int(self.request.retries or 0)  # waiting is not failing: no retry used up
        raise self.retry(countdown=throttled.wait, max_retries=retries + 1) from None
    except self.transient_errors:
        final = int(self.request.retries or 0) >= int(self.max_retries or 0)
        telemetry.count("failed" if final else "retried", request.domains)
        telemetry.describe(request, **{"email.outcome": "failed" if final else "retry"})
        raise
    except Exception:
        telemetry.count("failed", request.domains)
        telemetry.describe(request, **{"email.outcome": "failed"})
        raise
    telemetry.describe(request, **{"email.outcome": result["status"]})
    if result["status"] == "sent":
        telemetry.count("sent", request.domains)
    return result
