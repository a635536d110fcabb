"""A real SMTP server in-process (aiosmtpd) that records raw messages and can be scripted.

``SMTPServer.script_data(["421 4.3.2 busy", "250 OK"])`` makes the next DATA replies those, in
order (then 250); ``"drop"`` records the message and closes the connection without replying:
the server accepted it, the client never hears so. ``refuse_rcpt[address] = "550 ..."`` refuses
a recipient. Every message the server *accepted* is in ``received`` with its envelope and the
exact bytes of its content.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from project.testing import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # exactly as sent, CRLF line ends, dot-unstuffed


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    data_attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.data_attempts += 1
            reply = self.data_replies.pop(0) if self.data_replies else "250 2.0.0 Ok: queued"
            if reply.startswith("250") or reply == "drop":
                raw = envelope.original_content or b""
                self.received.append(
                    Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(raw))
                )
        if reply == "drop":
            assert server.transport is not None
            server.transport.abort()  # type: ignore[attr-defined]  # the 250 never leaves
            return "250 never sent"
        return reply


class SMTPServer:
    """aiosmtpd on a free loopback port; plain, STARTTLS (``tls_context``) or implicit TLS."""

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.handler = _Handler()
        self.port = free_port()
        options: dict[str, Any] = {}
        if tls_context is not None and implicit_tls:
            options["ssl_context"] = tls_context
        elif tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            options.update(authenticator=_authenticator(credentials), auth_required=True)
        # A busy 2-CPU machine (the whole suite running) can take more than aiosmtpd's default
        # 5 s to answer the controller's start-up probe.
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=30, **options
        )

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def data_attempts(self) -> int:
        with self.handler.lock:
            return self.handler.data_attempts

    def script_data(self, replies: list[str]) -> None:
        with self.handler.lock:
            self.handler.data_replies[:] = replies

    def refuse(self, address: str, reply: str) -> None:
        self.handler.refuse_rcpt[address] = reply


def _authenticator(credentials: tuple[str, str]) -> Callable[..., AuthResult]:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == credentials
        )
        return AuthResult(success=ok, handled=False)

    return check


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kit test SMTP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
