"""One delivery of ``email:deliver``: compose, rate-limit, send, and remember acceptance.

At most once, by Message-ID (the same for every attempt of a task, :func:`message_id_for`):

* ``kit:mail:sent:<id>`` is set (``SET NX`` with ``KIT_MAIL_DEDUP_TTL``) once the server has
  answered 250 to DATA; an attempt that finds it returns ``already_sent`` without connecting.
  A retry after an accepted message (the worker died before acknowledging, or Redis failed
  after the 250) therefore never sends it again.
* ``kit:mail:pending:<id>`` is set just before DATA and removed when the outcome is known. If the
  connection drops after the final "." went out, the server may have accepted the message and
  only its reply was lost: nobody can tell from here. The kit then chooses *at most once*: the
  marker stays and the task fails with :class:`DeliveryUnconfirmedError`, a permanent error
  archived for an operator, who checks the server's log for the Message-ID and, only if it was
  not delivered, deletes the marker and sends again. An attempt that finds the marker (the worker
  died mid-DATA and the message was redelivered) fails the same way. A duplicate e-mail cannot be
  taken back; a parked one can be re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from project import keys
from project.broker.connections import as_text
from project.errors import PermanentError, TransientError
from project.storage import LocalStorage
from tasks.email import smtp
from tasks.email.message import Attachment, build_message, message_id_for
from tasks.email.ratelimit import RateLimiter
from tasks.email.settings import MailSettings
from tasks.email.templates import Rendered, render
from tasks.email.validation import Mailbox, MailRequest, parse_address

__all__ = ["DeliveryUnconfirmedError", "Ledger", "deliver", "sender_of"]


class DeliveryUnconfirmedError(PermanentError):
    """The message may have been delivered; it is parked for an operator, never re-sent."""


@dataclass(frozen=True)
class Ledger:
    """Acceptance and in-doubt markers by Message-ID (:mod:`project.keys`)."""

    client: redis.Redis
    ttl: int

    def sent(self, message_id: str) -> str | None:
        return _text(self.client.get(keys.mail_sent(message_id)))

    def pending(self, message_id: str) -> str | None:
        return _text(self.client.get(keys.mail_pending(message_id)))

    def begin(self, message_id: str, task_id: str | None) -> None:
        """Mark the hand-over as started; refuse if another attempt is in it or in doubt."""
        key = keys.mail_pending(message_id)
        if not self.client.set(key, task_id or "", nx=True, ex=self.ttl):
            raise _unconfirmed(message_id, "another attempt was handing it over")

    def accepted(self, message_id: str, reply: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(keys.mail_sent(message_id), reply, nx=True, ex=self.ttl)
            pipe.delete(keys.mail_pending(message_id))
            pipe.execute()

    def abandon(self, message_id: str) -> None:
        """The server gave a verdict other than acceptance: nothing was delivered."""
        self.client.delete(keys.mail_pending(message_id))


def _text(value: Any) -> str | None:
    return None if value is None else as_text(value)


def _unconfirmed(message_id: str, why: str) -> DeliveryUnconfirmedError:
    return DeliveryUnconfirmedError(
        f"delivery of Message-ID {message_id} unconfirmed ({why}); it may have been delivered, "
        "so it is not retried. Check the SMTP server's log for this Message-ID; to send it "
        f"anyway, delete {keys.mail_pending(message_id)} in Redis and run the task again"
    )


def sender_of(request: MailRequest, settings: MailSettings) -> Mailbox:
    if request.sender is not None:
        return request.sender
    if settings.sender is None:
        raise PermanentError("email:deliver: no sender; pass sender= or set SMTP_FROM")
    return parse_address(settings.sender, "SMTP_FROM")


def compose_content(request: MailRequest, settings: MailSettings) -> Rendered:
    if request.template is None:
        return Rendered(request.subject, request.body, request.html)
    return render(
        settings.template_dir,
        request.template,
        request.context,
        need_subject=request.subject is None,
    )


def read_attachments(request: MailRequest, storage: LocalStorage, budget: int) -> list[Attachment]:
    """Each attachment from the storage root (its safe path API), within the size budget."""
    found: list[Attachment] = []
    for i, spec in enumerate(request.attachments):
        remaining = budget - sum(len(a.data) for a in found)
        data = storage.read(spec.path, max(remaining, 0), argument=f"attachments[{i}]")
        found.append(Attachment(spec.filename, spec.content_type, data))
    return found


def deliver(
    request: MailRequest,
    *,
    task_id: str | None,
    settings: MailSettings,
    storage: LocalStorage,
    ledger: Ledger,
    limiter: RateLimiter,
) -> dict[str, Any]:
    """Send ``request`` once; the result the task returns, or a classified error.

    :class:`~tasks.email.ratelimit.Throttled` means: try again after its ``wait``.
    """
    sender = sender_of(request, settings)
    message_id = message_id_for(task_id, sender)
    result: dict[str, Any] = {"message_id": message_id, "recipients": len(request.recipients)}
    reply = ledger.sent(message_id)
    if reply is not None:
        return {**result, "status": "already_sent", "reply": reply}
    if ledger.pending(message_id) is not None:
        raise _unconfirmed(message_id, "an earlier attempt was interrupted during DATA")
    limiter.acquire(message_id, request.domains)
    content = compose_content(request, settings)
    attachments = read_attachments(request, storage, settings.max_bytes)
    message = build_message(request, sender, content, attachments, message_id)
    size = len(message.as_bytes())
    if size > settings.max_bytes:
        raise PermanentError(
            f"email:deliver: the message is {size} bytes encoded, over the limit of "
            f"{settings.max_bytes} (KIT_MAIL_MAX_BYTES)"
        )
    config = settings.smtp
    recipients = [box.address for box in request.recipients]
    began = False

    def before_data() -> None:
        nonlocal began
        ledger.begin(message_id, task_id)
        began = True

    try:
        accepted = smtp.send(message, sender.address, recipients, config, before_data)
    except smtp.DeliveryUnconfirmed as exc:
        raise _unconfirmed(
            message_id, f"connection lost after the message was sent: {exc}"
        ) from exc
    except (PermanentError, TransientError):
        if began:
            ledger.abandon(message_id)
        raise
    ledger.accepted(message_id, accepted.reply)
    return {**result, "status": "sent", "reply": accepted.reply, "bytes": size}
