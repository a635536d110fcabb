"""The message itself: an :class:`email.message.EmailMessage` built with the ``SMTP`` policy.

The standard library does every encoding that matters: RFC 2047 encoded words for UTF-8
subjects and display names (``headerregistry``), CRLF line ends, folding at 78 characters, and
for the bodies quoted-printable or base64, whichever is shorter (``cte_type="7bit"``: the
message is 7-bit clean and needs no 8BITMIME from the server). The shape follows what mail
clients send: ``multipart/alternative`` for text and HTML, inside ``multipart/mixed`` when there
are attachments.

The Message-ID is derived from the task id, so every attempt of one task carries the same one:
it is the key under which acceptance is remembered (:mod:`tasks.email.delivery`), and a
recipient's client can recognise a duplicate should one ever get through.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime

from project.errors import PermanentError
from tasks.email.templates import Rendered
from tasks.email.validation import Mailbox, MailRequest

__all__ = ["POLICY", "Attachment", "build_message", "message_id_for"]

#: CRLF, folded at 78 characters, 7-bit transfer encodings only.
POLICY = policy.SMTP.clone(cte_type="7bit")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


def message_id_for(task_id: str | None, sender: Mailbox) -> str:
    """``<task-id@sender-domain>``: the same for every attempt of a task."""
    unique = task_id or str(uuid.uuid4())
    cleaned = "".join(ch for ch in unique if ch.isalnum() or ch in "-._")[:100] or "kit"
    return f"<{cleaned}@{sender.domain}>"


def _address(box: Mailbox) -> Address:
    local, _, domain = box.address.rpartition("@")
    return Address(display_name=box.name, username=local, domain=domain)


def _set_addresses(message: EmailMessage, header: str, boxes: Sequence[Mailbox]) -> None:
    if boxes:
        message[header] = [_address(box) for box in boxes]


def build_message(
    request: MailRequest,
    sender: Mailbox,
    content: Rendered,
    attachments: Sequence[Attachment],
    message_id: str,
) -> EmailMessage:
    """The complete message; Bcc recipients are left out of it (they are envelope-only)."""
    subject = request.subject if request.subject is not None else content.subject
    if subject is None:
        raise PermanentError("email:deliver: no subject (give subject or a .subject.txt)")
    message = EmailMessage(policy=POLICY)
    message["From"] = _address(sender)
    _set_addresses(message, "To", request.to)
    _set_addresses(message, "Cc", request.cc)
    _set_addresses(message, "Reply-To", request.reply_to)
    message["Subject"] = subject
    message["Date"] = format_datetime(localtime())
    message["Message-ID"] = message_id
    for name, value in request.headers:
        message[name] = value
    if content.text is not None:
        message.set_content(content.text, subtype="plain")
        if content.html is not None:
            message.add_alternative(content.html, subtype="html")
    elif content.html is not None:
        message.set_content(content.html, subtype="html")
    for item in attachments:
        maintype, _, subtype = item.content_type.partition("/")
        message.add_attachment(
            item.data, maintype=maintype, subtype=subtype, filename=item.filename
        )
    return message
