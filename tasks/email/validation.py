"""The arguments of ``email:deliver``, parsed once for both sides of the queue.

The producer runs :func:`parse_deliver` before publishing, so a bad payload is a
:class:`~project.errors.ValidationError` in the caller's hands with nothing enqueued; the worker
runs it again on what it received (``send_task``, another language or an old producer skip the
first check). Only what can be checked without the SMTP server, the template directory and the
storage is checked here. The arguments are read through the catalog's parser
(:class:`tasks.arguments.Arguments`); what is the e-mail's own (addresses, headers, attachments)
is parsed here.

Header injection is refused outright rather than cleaned: a CR or LF in an address, a name, the
subject, a header, a file name or a template name means the payload was built from untrusted
input without care, and silently "fixing" it would hide that. Addresses are plain ASCII local
parts at a domain that may be international (kept as its IDNA A-label, which every server
accepts); the SMTPUTF8 extension is not used.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from project.errors import ValidationError
from project.storage import clean_path
from tasks.arguments import Arguments, check_text, refuse_controls

__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_RECIPIENTS",
    "AttachmentSpec",
    "MailRequest",
    "Mailbox",
    "parse_address",
    "parse_deliver",
]

TASK = "email:deliver"
MAX_RECIPIENTS = 100  # to + cc + bcc; more is a mailing list, not a message
MAX_ATTACHMENTS = 20
MAX_SUBJECT = 998  # RFC 5322's line limit; folded when encoded
MAX_NAME = 200
MAX_HEADER_VALUE = 998
MAX_HEADERS = 50
#: Headers the message builder sets itself; a payload may not set or duplicate them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "return-path",
        "received",
    }
)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_NAME_ADDR = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<address>[^<>]*)>")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")  # printable ASCII without ':' (RFC 5322 ftext)
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_./-]+")
_KNOWN = (
    "to",
    "cc",
    "bcc",
    "reply_to",
    "sender",
    "subject",
    "body",
    "html",
    "headers",
    "attachments",
    "template",
    "context",
)


@dataclass(frozen=True)
class Mailbox:
    """An address with an optional display name; ``address`` is ASCII (domain as A-label)."""

    address: str
    name: str = ""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True)
class AttachmentSpec:
    path: str  # relative to the storage root, cleaned
    filename: str
    content_type: str


@dataclass(frozen=True)
class MailRequest:
    to: tuple[Mailbox, ...]
    subject: str | None = None
    body: str | None = None
    html: str | None = None
    cc: tuple[Mailbox, ...] = ()
    bcc: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    sender: Mailbox | None = None  # None: SMTP_FROM
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[AttachmentSpec, ...] = ()
    template: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def recipients(self) -> tuple[Mailbox, ...]:
        """Every envelope recipient (Bcc included), each address once."""
        seen: dict[str, Mailbox] = {}
        for box in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(box.address.lower(), box)
        return tuple(seen.values())

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted({box.domain for box in self.recipients}))


def parse_address(value: object, what: str) -> Mailbox:
    """``user@example.com``, ``Name <user@example.com>`` or ``{"address", "name"}``."""
    name: object = ""
    if isinstance(value, Mapping):
        unknown = set(value) - {"address", "name"}
        if unknown:
            raise ValidationError(f"{TASK}: {what} has unknown key(s) {sorted(unknown)}")
        address, name = value.get("address"), value.get("name") or ""
    elif isinstance(value, str):
        refuse_controls(value, f"{TASK}: {what}")
        match = _NAME_ADDR.fullmatch(value.strip())
        address, name = (match["address"], match["name"]) if match else (value.strip(), "")
    else:
        raise ValidationError(f"{TASK}: {what} must be an address string or {{address, name}}")
    if not isinstance(address, str) or not isinstance(name, str):
        raise ValidationError(f"{TASK}: {what} must have a string address and name")
    refuse_controls(address, f"{TASK}: {what}")
    refuse_controls(name, f"{TASK}: {what} name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"{TASK}: {what} name is longer than {MAX_NAME} characters")
    return Mailbox(_check_address(address.strip(), what), name.strip().strip('"'))


def _check_address(address: str, what: str) -> str:
    local, at, domain = address.rpartition("@")
    invalid = ValidationError(f"{TASK}: {what} {address[:80]!r} is not a valid e-mail address")
    if not at or not _LOCAL.fullmatch(local) or len(local) > 64:
        raise invalid
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise invalid from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise invalid
    if labels[-1].isdigit():  # an IP address is not a mail domain here
        raise invalid
    full = f"{local}@{ascii_domain}"
    if len(full) > 254:
        raise invalid
    return full


def _mailboxes(value: object, what: str, *, required: bool = False) -> tuple[Mailbox, ...]:
    if value is None or value == []:
        if required:
            raise ValidationError(f"{TASK}: {what} is required")
        return ()
    items = [value] if isinstance(value, str | Mapping) else value
    if not isinstance(items, Sequence) or isinstance(items, bytes):
        raise ValidationError(f"{TASK}: {what} must be an address or a list of addresses")
    return tuple(parse_address(item, f"{what}[{i}]") for i, item in enumerate(items))


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or len(value) > MAX_HEADERS:
        raise ValidationError(f"{TASK}: headers must be a mapping of at most {MAX_HEADERS} names")
    headers: list[tuple[str, str]] = []
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValidationError(
                f"{TASK}: header name {str(name)[:80]!r} is not a valid field name "
                "(printable ASCII without ':', CR or LF)"
            )
        if name.lower() in RESERVED_HEADERS:
            raise ValidationError(f"{TASK}: header {name} is set by the task; use its argument")
        label = f"{TASK}: header {name}"
        checked = check_text(text, label, MAX_HEADER_VALUE, multiline=False, blank=True)
        if checked is None:
            raise ValidationError(f"{label} must be a string")
        headers.append((name, checked))
    return tuple(headers)


def _attachments(value: object) -> tuple[AttachmentSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValidationError(f"{TASK}: attachments must be a list")
    if len(value) > MAX_ATTACHMENTS:
        raise ValidationError(f"{TASK}: at most {MAX_ATTACHMENTS} attachments")
    specs = []
    for i, item in enumerate(value):
        what = f"attachments[{i}]"
        spec: Mapping[str, Any] = {"path": item} if isinstance(item, str) else item
        if not isinstance(spec, Mapping) or set(spec) - {"path", "filename", "content_type"}:
            raise ValidationError(
                f"{TASK}: {what} must be a path or {{path, filename, content_type}}"
            )
        path = clean_path(spec.get("path"), f"{TASK}: {what}.path")
        filename = check_text(
            spec.get("filename"), f"{TASK}: {what}.filename", 255, multiline=False, blank=True
        )
        filename = filename or PurePosixPath(path).name
        if "/" in filename or "\\" in filename or not filename.strip():
            raise ValidationError(f"{TASK}: {what}.filename must be a bare file name")
        content_type = spec.get("content_type")
        if content_type is None:
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type.lower()):
            raise ValidationError(f"{TASK}: {what}.content_type must look like type/subtype")
        specs.append(AttachmentSpec(path, filename, content_type.lower()))
    return tuple(specs)


def _template(value: object) -> str | None:
    if value is None:
        return None
    name = clean_path(value, f"{TASK}: template")
    if not _TEMPLATE_NAME.fullmatch(name):
        raise ValidationError(f"{TASK}: template names use letters, digits, '_', '-', '.', '/'")
    return name


def parse_deliver(
    positional: Sequence[Any], kwargs: Mapping[str, Any], max_bytes: int
) -> MailRequest:
    """The checked request, or :class:`ValidationError` naming the first problem."""
    args = Arguments(TASK, kwargs)
    args.keywords_only(positional)
    args.only(_KNOWN)
    context = args.get("context")
    if context is not None and (
        not isinstance(context, Mapping) or not all(isinstance(k, str) for k in context)
    ):
        raise args.fail("context", "a mapping with string keys")
    sender = args.get("sender")
    request = MailRequest(
        to=_mailboxes(args.get("to"), "to", required=True),
        cc=_mailboxes(args.get("cc"), "cc"),
        bcc=_mailboxes(args.get("bcc"), "bcc"),
        reply_to=_mailboxes(args.get("reply_to"), "reply_to"),
        sender=parse_address(sender, "sender") if sender else None,
        subject=args.text("subject", MAX_SUBJECT, multiline=False, blank=True),
        body=args.text("body", max_bytes, blank=True),
        html=args.text("html", max_bytes, blank=True),
        headers=_headers(args.get("headers")),
        attachments=_attachments(args.get("attachments")),
        template=_template(args.get("template")),
        context=dict(context or {}),
    )
    if len(request.recipients) > MAX_RECIPIENTS:
        raise args.error(f"more than {MAX_RECIPIENTS} recipients (to, cc, bcc)")
    if request.template is None:
        if request.subject is None or (request.body is None and request.html is None):
            raise args.error("give subject and body and/or html, or a template")
        if request.context:
            raise args.error("context applies to templates only")
    elif request.body is not None or request.html is not None:
        raise args.error("body and html come from the template; give either")
    size = _payload_size(request)
    if size > max_bytes:
        raise args.error(
            f"the message is {size} bytes before attachments, over the limit of "
            f"{max_bytes} (KIT_MAIL_MAX_BYTES)"
        )
    return request


def _payload_size(request: MailRequest) -> int:
    """A lower bound of the encoded size: the text the message will carry, in UTF-8."""
    parts = [request.subject or "", request.body or "", request.html or ""]
    parts += [f"{name}: {value}" for name, value in request.headers]
    try:
        parts.append(json.dumps(request.context, ensure_ascii=False) if request.context else "")
    except (TypeError, ValueError):
        raise ValidationError(f"{TASK}: context must be JSON data") from None
    return sum(len(part.encode("utf-8", "surrogatepass")) for part in parts)


def _check_deliver(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    from project.config import current
    from tasks.email.settings import MailSettings

    parse_deliver(tuple(args), dict(kwargs), current(MailSettings).max_bytes)


#: The producer-side check by task name (the ``celery_kit.checks`` entry point): a producer
#: that sends ``email:deliver`` by name, without the catalog's tasks or Jinja2, is still
#: refused a bad payload before anything is published.
CHECKS = {"email:deliver": _check_deliver}
