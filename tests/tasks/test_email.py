"""email:deliver through a real worker (in-thread, bound to the kit's app) and a real SMTP
server (aiosmtpd, in-process): what arrives, byte for byte, and what retries do."""

from __future__ import annotations

import dataclasses
import email
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, chain

import project.config
from project import ValidationError
from project.broker.queues import queue_keys
from project.delay.forwarder import Forwarder
from project.lifecycle.kit import default_kit
from project.retries.archive import ArchivedTask, Reason
from project.storage import StorageSettings
from tasks.email.settings import MailSettings, SmtpSettings
from tasks.email.tasks import deliver_email
from tests.support.polling import eventually
from tests.support.smtp import Received, SMTPServer

TIMEOUT = 30
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # binary, with every byte value


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(smtp_server: SMTPServer, tmp_path: Path) -> Iterator[MailSettings]:
    """The worker sends to ``smtp_server`` in clear text; attachments and templates in tmp."""
    (tmp_path / "storage").mkdir()
    (tmp_path / "templates").mkdir()
    mail = MailSettings(
        smtp=SmtpSettings(
            host="127.0.0.1",
            port=smtp_server.port,
            security="none",
            timeout=5.0,
            command_timeout=10.0,
        ),
        sender="Kit <noreply@kit.example>",
        template_dir=str(tmp_path / "templates"),
    )
    kit = default_kit()
    with (
        project.config.override(mail),
        project.config.override(StorageSettings(root=str(tmp_path / "storage"))),
        kit.override(retries=dataclasses.replace(kit.settings.retries, backoff=0.1)),
    ):
        yield mail


def _archived(task_id: str) -> ArchivedTask:
    archive = default_kit().archive()
    return eventually(lambda: archive.get(task_id), TIMEOUT)


def _parsed(received: Received) -> EmailMessage:
    message = email.message_from_bytes(received.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _header_lines(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def test_a_full_message_arrives_as_sent(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    storage = Path(project.config.current(StorageSettings).root)
    (storage / "docs").mkdir()
    (storage / "docs" / "chart.png").write_bytes(PNG)
    (storage / "docs" / "notes.txt").write_bytes(b"plain notes\r\n")
    sent = deliver_email.delay(
        to=["Zoë Ångström <zoe@example.com>", "bob@example.org"],
        cc="Carol <carol@example.com>",
        bcc=["dave@example.net"],
        reply_to="support@kit.example",
        subject="Grüße ✓ invoice",
        body="Hällo Zoë,\nyour invoice is attached.\n",
        html="<p>Hällo <b>Zoë</b></p>\n",
        headers={"X-Campaign": "spring-2026"},
        attachments=[
            "docs/chart.png",
            {"path": "docs/notes.txt", "filename": "Notizen für dich.txt"},
        ],
    )
    result = sent.get(TIMEOUT)

    (received,) = smtp_server.received
    assert received.mail_from == "noreply@kit.example"
    assert received.rcpt_tos == (
        "zoe@example.com",
        "bob@example.org",
        "carol@example.com",
        "dave@example.net",
    )
    lines = _header_lines(received.data)
    assert b"From: Kit <noreply@kit.example>" in lines
    assert b"To: =?utf-8?b?Wm/DqyDDhW5nc3Ryw7Zt?= <zoe@example.com>, bob@example.org" in lines
    assert b"Subject: =?utf-8?b?R3LDvMOfZSDinJM=?= invoice" in lines  # "Grüße ✓" encoded
    assert b"Cc: Carol <carol@example.com>" in lines
    assert b"Reply-To: support@kit.example" in lines
    assert b"X-Campaign: spring-2026" in lines
    assert not any(line.lower().startswith(b"bcc") for line in lines)
    assert all(max(line) < 128 for line in received.data.split(b"\r\n") if line)  # 7-bit
    assert f"Message-ID: <{sent.id}@kit.example>".encode() in lines
    assert result["message_id"] == f"<{sent.id}@kit.example>"

    message = _parsed(received)
    assert message["Subject"] == "Grüße ✓ invoice"
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    assert message.get_content_type() == "multipart/mixed"
    alternative, chart, notes = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = alternative.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    # Text travels in canonical form: CRLF line ends, quoted-printable.
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_payload() == "H=C3=A4llo Zo=C3=AB,\r\nyour invoice is attached.\r\n"
    assert text.get_payload(decode=True) == "Hällo Zoë,\r\nyour invoice is attached.\r\n".encode()
    assert html.get_payload(decode=True) == "<p>Hällo <b>Zoë</b></p>\r\n".encode()
    assert chart.get_content_type() == "image/png" and chart.get_filename() == "chart.png"
    assert chart.get_payload(decode=True) == PNG
    assert notes.get_filename() == "Notizen für dich.txt"
    assert notes.get_payload(decode=True) == b"plain notes\r\n"
    assert result["status"] == "sent" and result["reply"].startswith("250")


def test_templates_render_subject_text_and_escaped_html(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    templates = Path(str(mail_settings.template_dir))
    (templates / "welcome.subject.txt").write_text("Welcome, {{ name }}!\n")
    (templates / "welcome.txt").write_text("Hi {{ name }}, your plan: {{ plan }}.\n")
    (templates / "welcome.html").write_text("<p>Hi {{ name }}</p>\n")
    deliver_email.delay(
        to="ada@example.com",
        template="welcome",
        context={"name": "Ada <script>", "plan": "pro"},
    ).get(TIMEOUT)
    message = _parsed(smtp_server.received[0])
    assert message["Subject"] == "Welcome, Ada <script>!"
    text, html = message.iter_parts()
    assert text.get_content() == "Hi Ada <script>, your plan: pro.\r\n"
    assert html.get_content() == "<p>Hi Ada &lt;script&gt;</p>\r\n"


@pytest.mark.parametrize(
    ("files", "context", "message"),
    [
        ({"t.subject.txt": "S", "t.txt": "Hi {{ name }}"}, {}, "'name' is undefined"),
        ({}, {}, "template 't.subject.txt' not found"),
        ({"t.subject.txt": "S"}, {}, "neither t.txt nor t.html"),
    ],
)
def test_template_problems_are_archived_at_once(
    celery_worker: Any,
    smtp_server: SMTPServer,
    mail_settings: MailSettings,
    files: dict[str, str],
    context: dict[str, str],
    message: str,
) -> None:
    for name, text in files.items():
        (Path(str(mail_settings.template_dir)) / name).write_text(text)
    result = deliver_email.delay(to="ada@example.com", template="t", context=context)
    record = _archived(result.id)
    assert record.reason == Reason.PERMANENT and record.attempts == 1
    assert message in record.error
    assert smtp_server.received == []


def test_421_then_250_is_retried_once_and_delivered_once(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    smtp_server.script_data(["421 4.3.2 Service busy, try later"])
    result = deliver_email.delay(to="ada@example.com", subject="s", body="b").get(TIMEOUT)
    assert result["status"] == "sent"
    assert smtp_server.data_attempts == 2
    assert len(smtp_server.received) == 1


def test_550_is_archived_after_one_attempt_with_the_reply(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    smtp_server.script_data(["550 5.7.1 Message rejected as spam"])
    result = deliver_email.delay(to="ada@example.com", subject="s", body="b")
    record = _archived(result.id)
    assert record.reason == Reason.PERMANENT and record.attempts == 1
    assert "550 5.7.1 Message rejected as spam" in record.error
    assert smtp_server.data_attempts == 1


def test_a_refused_mailbox_is_archived_and_nobody_gets_the_message(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    smtp_server.refuse("ghost@example.com", "550 5.1.1 <ghost@example.com>: no such user")
    result = deliver_email.delay(to=["ada@example.com", "ghost@example.com"], subject="s", body="b")
    record = _archived(result.id)
    assert record.attempts == 1
    assert "550 5.1.1 <ghost@example.com>: no such user" in record.error
    assert smtp_server.data_attempts == 0


def test_a_drop_after_data_is_never_delivered_twice(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    smtp_server.script_data(["drop"])
    result = deliver_email.delay(to="ada@example.com", subject="s", body="b")
    record = _archived(result.id)
    assert record.reason == Reason.PERMANENT and record.attempts == 1
    assert record.error_type == "DeliveryUnconfirmedError"
    assert "may have been delivered" in record.error
    # Run again under the same id (an operator's careless re-run, a redelivery): still parked.
    again = deliver_email.apply_async(kwargs=record.kwargs, task_id=result.id)
    with pytest.raises(Exception, match="unconfirmed"):
        again.get(TIMEOUT)
    assert len(smtp_server.received) == 1 and smtp_server.data_attempts == 1


def test_an_accepted_message_is_not_sent_again_under_the_same_id(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    first = deliver_email.apply_async(
        kwargs={"to": "a@example.com", "subject": "s", "body": "b"}, task_id="order-42-receipt"
    )
    assert first.get(TIMEOUT)["status"] == "sent"
    first.forget()  # so that the second result is the second run's
    second = deliver_email.apply_async(
        kwargs={"to": "a@example.com", "subject": "s", "body": "b"}, task_id="order-42-receipt"
    )
    assert second.get(TIMEOUT)["status"] == "already_sent"
    assert len(smtp_server.received) == 1


def test_a_long_delay_is_forwarded_and_delivered(
    celery_worker: Any,
    smtp_server: SMTPServer,
    mail_settings: MailSettings,
    redis: Any,
) -> None:
    result = deliver_email.apply_async(
        kwargs={"to": "a@example.com", "subject": "later", "body": "b"}, countdown=3600
    )
    assert redis.zscore("kit:scheduled", result.id) is not None
    redis.zadd("kit:scheduled", {result.id: time.time() - 1})  # due now
    assert Forwarder(project.app, 1.0).run_once() == 1
    assert result.get(TIMEOUT)["status"] == "sent"
    assert _parsed(smtp_server.received[0])["Subject"] == "later"


def test_rate_limited_mail_waits_without_holding_the_worker(
    celery_worker: Any,
    smtp_server: SMTPServer,
    mail_settings: MailSettings,
) -> None:
    # One message per 4 s per domain, on a worker with a single slot: the second message to
    # example.com waits for its slot while the example.org message goes out.
    limited = dataclasses.replace(mail_settings, rate_limit=(1, 4.0), rate_scope="domain")
    with project.config.override(limited):
        first = deliver_email.delay(to="a@example.com", subject="1", body="b")
        second = deliver_email.delay(to="b@example.com", subject="2", body="b")
        other = deliver_email.delay(to="c@example.org", subject="3", body="b")
        for result in (first, second, other):
            assert result.get(TIMEOUT)["status"] == "sent"
    subjects = [_parsed(r)["Subject"] for r in smtp_server.received]
    assert subjects == ["1", "3", "2"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"to": "a@example.com\r\nBcc: victim@example.org", "subject": "s", "body": "b"},
            "CR or LF",
        ),
        (
            {"to": "a@example.com", "subject": "hi\r\nBcc: victim@example.org", "body": "b"},
            "CR or LF",
        ),
        ({"to": "Eve\n <a@example.com>", "subject": "s", "body": "b"}, "CR or LF"),
        (
            {
                "to": "a@example.com",
                "subject": "s",
                "body": "b",
                "headers": {"X-Tag": "x\r\nBcc: victim@example.org"},
            },
            "CR or LF",
        ),
        (
            {
                "to": "a@example.com",
                "subject": "s",
                "body": "b",
                "attachments": [{"path": "a.pdf", "filename": "a\r\n.pdf"}],
            },
            "CR or LF",
        ),
        (
            {"to": "a@example.com", "subject": "s", "body": "b", "headers": {"Bcc": "x"}},
            "set by the task",
        ),
        ({"to": "not-an-address", "subject": "s", "body": "b"}, "not a valid e-mail address"),
        ({"to": "a@@example.com", "subject": "s", "body": "b"}, "not a valid e-mail address"),
        ({"to": "a@example", "subject": "s", "body": "b"}, "not a valid e-mail address"),
        ({"to": "a b@example.com", "subject": "s", "body": "b"}, "not a valid e-mail address"),
        ({"to": [], "subject": "s", "body": "b"}, "to is required"),
        ({"to": "a@example.com", "subject": "s", "body": "x" * 20_000_000}, "longer than"),
        (
            {
                "to": "a@example.com",
                "subject": "s",
                "body": "x" * 6_000_000,
                "html": "y" * 6_000_000,
            },
            "KIT_MAIL_MAX_BYTES",
        ),
        (
            {"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["../etc/passwd"]},
            "'..'",
        ),
        (
            {"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["/etc/passwd"]},
            "absolute",
        ),
        ({"to": "a@example.com", "subject": "s", "bodi": "b"}, "unknown argument"),
    ],
)
def test_bad_payloads_are_refused_at_enqueue_and_nothing_is_queued(
    redis: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        deliver_email.delay(**kwargs)
    assert sum(redis.llen(k) for q in ("critical", "default", "low") for k in queue_keys(q)) == 0


def test_later_email_steps_of_a_chain_are_checked_at_enqueue(redis: Any) -> None:
    ok = {"to": "a@example.com", "subject": "s", "body": "b"}
    with pytest.raises(ValidationError, match="immutable"):
        chain(deliver_email.si(**ok), deliver_email.s(**ok)).delay()
    with pytest.raises(ValidationError, match="not a valid"):
        chain(deliver_email.si(**ok), deliver_email.si(**{**ok, "to": "nope"})).delay()
    assert sum(redis.llen(k) for q in ("critical", "default", "low") for k in queue_keys(q)) == 0


def test_a_chain_of_emails_sends_each_in_order(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    steps = [deliver_email.si(to="a@example.com", subject=str(i), body="b") for i in range(3)]
    chain(*steps).delay().get(TIMEOUT)
    assert [_parsed(r)["Subject"] for r in smtp_server.received] == ["0", "1", "2"]


def test_a_payload_sent_around_the_check_is_archived_by_the_worker(
    celery_worker: Any, smtp_server: SMTPServer, mail_settings: MailSettings
) -> None:
    result = Celery.send_task(  # as a producer without the kit sends it
        project.app,
        "email:deliver",
        kwargs={"to": "a@example.com", "subject": "x\r\nBcc: e@example.org", "body": "b"},
    )
    record = _archived(result.id)
    assert record.error_type == "ValidationError" and record.attempts == 1
    assert smtp_server.data_attempts == 0
