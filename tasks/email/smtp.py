"""One SMTP transaction with :mod:`smtplib`, and what its failures mean for the retry policy.

* Connection refused or dropped, a timeout, a TLS handshake that broke off, or a 4xx reply: the
  server may take the message later, so :class:`~project.errors.TransientError` (retried with
  backoff).
* A 5xx reply (no such mailbox, rejected content, authentication refused): the same message will
  be refused again, so :class:`~project.errors.PermanentError`, whose text is the server's reply
  ("550 5.1.1 ..."): it is what the archive shows the operator. So is a certificate that does
  not verify, or a server without STARTTLS when ``SMTP_SECURITY=starttls``: configuration, not
  luck, has to change.
* Recipients are all or nothing: if the server refuses any of them (RCPT), the transaction is
  reset and nobody gets the message, so that a retry (4xx) never re-sends to those who already
  had it; a 5xx for any recipient fails the whole task, naming each refusal.
* The connection failing *after the final "." of DATA was sent* is :class:`DeliveryUnconfirmed`:
  the server may have accepted the message and lost only its reply. Retrying could deliver it
  twice, so the caller (:mod:`tasks.email.delivery`) does not retry it.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from project.errors import PermanentError, TransientError
from tasks.email.settings import SmtpSettings

__all__ = ["Accepted", "DeliveryUnconfirmed", "SmtpSettings", "send"]


class DeliveryUnconfirmed(Exception):
    """The whole message was sent but the server's verdict never arrived."""


@dataclass(frozen=True)
class Accepted:
    code: int
    reply: str


class _Tracking:
    """Mixed into smtplib's clients: notes when DATA's terminating "." has left this host."""

    in_data = False
    dot_sent = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.in_data = True
        try:
            return super().data(msg)  # type: ignore[misc, no-any-return]
        finally:
            self.in_data = False

    def send(self, s: Any) -> None:
        super().send(s)  # type: ignore[misc]
        if self.in_data and isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.dot_sent = True


class _SMTP(_Tracking, smtplib.SMTP):
    pass


class _SMTPSSL(_Tracking, smtplib.SMTP_SSL):
    pass


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


def _classify(code: int, message: bytes | str, stage: str) -> Exception:
    reply = _reply(code, message)
    if 400 <= code < 500:
        return TransientError(f"SMTP {stage} refused for now: {reply}")
    return PermanentError(f"SMTP {stage} refused: {reply}")


def _connect(config: SmtpSettings) -> _Tracking:
    host = config.host
    # Connecting in the constructor (not connect()) also records the host name STARTTLS
    # verifies the certificate against; a greeting other than 220 raises SMTPConnectError.
    if config.security == "tls":
        client: smtplib.SMTP = _SMTPSSL(
            host, config.port, timeout=config.timeout, context=config.tls_context()
        )
    else:
        client = _SMTP(host, config.port, timeout=config.timeout)
    try:
        if client.sock is not None:
            client.sock.settimeout(config.command_timeout)
        client.ehlo()
        if config.security == "starttls":
            if not client.has_extn("starttls"):
                raise PermanentError(
                    f"SMTP server {host}:{config.port} does not offer STARTTLS and "
                    "SMTP_SECURITY=starttls; refusing to send in clear text"
                )
            client.starttls(context=config.tls_context())
            client.ehlo()
        if config.username:
            client.login(config.username, config.password or "")
    except BaseException:
        client.close()
        raise
    assert isinstance(client, _Tracking)
    return client


def send(
    message: EmailMessage,
    envelope_from: str,
    recipients: Sequence[str],
    config: SmtpSettings,
    before_data: Callable[[], None] = lambda: None,
) -> Accepted:
    """Hand ``message`` to the server; :class:`Accepted`, or the classified error.

    ``before_data`` runs once every recipient was accepted, just before DATA: from then on the
    message may reach the server.
    """
    client: _Tracking | None = None
    try:
        client = _connect(config)
        smtp: smtplib.SMTP = client  # type: ignore[assignment]
        code, reply = smtp.mail(envelope_from)
        if code != 250:
            raise _classify(code, reply, "MAIL FROM")
        refused = [(rcpt, *smtp.rcpt(rcpt)) for rcpt in recipients]
        refused = [(rcpt, c, r) for rcpt, c, r in refused if c not in (250, 251)]
        if refused:
            smtp.rset()
            replies = "; ".join(f"<{rcpt}>: {_reply(c, r)}" for rcpt, c, r in refused)
            transient = all(400 <= c < 500 for _, c, _ in refused)
            kind = TransientError if transient else PermanentError
            raise kind(f"SMTP RCPT TO refused (nothing sent): {replies}")
        before_data()
        # SMTP wants CRLF line ends whatever policy the message was built with.
        code, reply = smtp.data(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
        if code != 250:
            raise _classify(code, reply, "DATA")
        accepted = Accepted(code, _reply(code, reply))
        _quit_quietly(smtp)
        return accepted
    except (PermanentError, TransientError):
        raise
    except smtplib.SMTPResponseException as exc:  # from ehlo, starttls, login, data's 354
        if client is not None and client.dot_sent:
            raise DeliveryUnconfirmed(_reply(exc.smtp_code, exc.smtp_error)) from exc
        raise _classify(exc.smtp_code, exc.smtp_error, "session") from exc
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(
            f"SMTP server {config.host}:{config.port} certificate not trusted: "
            f"{exc.verify_message}; set SMTP_CA_FILE to the CA that signed it"
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, TLS aborts
        if client is not None and client.dot_sent:
            raise DeliveryUnconfirmed(f"{type(exc).__name__}: {exc}") from exc
        raise TransientError(
            f"SMTP server {config.host}:{config.port} unreachable or dropped the connection: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if client is not None:
            client.close()  # type: ignore[attr-defined]


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """QUIT after an accepted message; a failure here changes nothing about the delivery."""
    with contextlib.suppress(smtplib.SMTPException, OSError):  # OSError: timeouts too
        smtp.quit()
