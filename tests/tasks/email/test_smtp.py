"""tasks.email.smtp against a real aiosmtpd server: TLS that verifies, and the classification
of each kind of failure into the kit's retry policy."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from project.errors import PermanentError, TransientError
from project.testing import free_port
from tasks.email.smtp import DeliveryUnconfirmed, SmtpSettings, send
from tests.support.smtp import SMTPServer, self_signed, server_tls_context


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "k@kit.example", "a@example.com", "s"
    message.set_content("hello\n")
    return message


def _config(port: int, **overrides: object) -> SmtpSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": None,
        "password": None,
        "ca_file": None,
        "timeout": 5.0,
        "command_timeout": 10.0,
    }
    values.update(overrides)
    return SmtpSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[SMTPServer]:
    server = SMTPServer(
        tls_context=server_tls_context(*certificate), credentials=("kit", "s3cret")
    ).start()
    yield server
    server.stop()


def test_starttls_with_the_ca_file_and_login_delivers(
    starttls_server: SMTPServer, certificate: tuple[Path, Path]
) -> None:
    config = _config(
        starttls_server.port,
        security="starttls",
        ca_file=str(certificate[0]),
        username="kit",
        password="s3cret",
    )
    accepted = send(_message(), "k@kit.example", ["a@example.com"], config)
    assert accepted.code == 250
    (received,) = starttls_server.received
    assert received.rcpt_tos == ("a@example.com",)
    assert b"\r\n\r\nhello\r\n" in received.data


def test_an_untrusted_certificate_is_refused_by_default(starttls_server: SMTPServer) -> None:
    config = _config(
        starttls_server.port, security="starttls", username="kit", password="s3cret"
    )  # no SMTP_CA_FILE: the system's CAs only
    with pytest.raises(PermanentError, match=r"certificate not trusted.*SMTP_CA_FILE"):
        send(_message(), "k@kit.example", ["a@example.com"], config)
    assert starttls_server.received == []


def test_wrong_credentials_are_permanent(
    starttls_server: SMTPServer, certificate: tuple[Path, Path]
) -> None:
    config = _config(
        starttls_server.port,
        security="starttls",
        ca_file=str(certificate[0]),
        username="kit",
        password="wrong",
    )
    with pytest.raises(PermanentError, match="535"):
        send(_message(), "k@kit.example", ["a@example.com"], config)


def test_implicit_tls_delivers(certificate: tuple[Path, Path]) -> None:
    server = SMTPServer(tls_context=server_tls_context(*certificate), implicit_tls=True).start()
    try:
        config = _config(server.port, security="tls", ca_file=str(certificate[0]))
        assert send(_message(), "k@kit.example", ["a@example.com"], config).code == 250
        assert len(server.received) == 1
    finally:
        server.stop()


def test_starttls_required_but_not_offered_is_permanent() -> None:
    server = SMTPServer().start()
    try:
        with pytest.raises(PermanentError, match="does not offer STARTTLS"):
            send(
                _message(),
                "k@kit.example",
                ["a@example.com"],
                _config(server.port, security="starttls"),
            )
        assert server.received == []
    finally:
        server.stop()


def test_a_closed_port_is_transient() -> None:
    with pytest.raises(TransientError, match="unreachable"):
        send(_message(), "k@kit.example", ["a@example.com"], _config(free_port()))


def test_a_4xx_recipient_refusal_is_transient_and_sends_nothing() -> None:
    server = SMTPServer().start()
    try:
        server.refuse("b@example.com", "450 4.2.1 mailbox busy")
        with pytest.raises(TransientError, match=r"450 4\.2\.1 mailbox busy"):
            send(
                _message(),
                "k@kit.example",
                ["a@example.com", "b@example.com"],
                _config(server.port),
            )
        assert server.data_attempts == 0
    finally:
        server.stop()


def test_a_drop_after_data_is_unconfirmed_not_transient() -> None:
    server = SMTPServer().start()
    try:
        server.script_data(["drop"])
        with pytest.raises(DeliveryUnconfirmed):
            send(_message(), "k@kit.example", ["a@example.com"], _config(server.port))
        assert len(server.received) == 1
    finally:
        server.stop()
