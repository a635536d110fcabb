"""``email:deliver``'s settings: the SMTP server (``SMTP_*``), the kit's ``KIT_MAIL_*`` limits."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from project.config.env import Env

__all__ = ["MailSettings", "SmtpSettings"]

DEFAULT_SMTP_HOST = "localhost"
DEFAULT_SMTP_SECURITY = "starttls"  # never plain text over the network unless asked for
#: The port each SMTP_SECURITY mode uses unless SMTP_PORT says otherwise (RFC 8314, RFC 6409).
SMTP_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
DEFAULT_SMTP_TIMEOUT = 10.0  # seconds to connect (and complete the TLS handshake)
DEFAULT_SMTP_COMMAND_TIMEOUT = 60.0  # seconds per SMTP reply (RFC 5321 allows minutes)
DEFAULT_MAIL_MAX_BYTES = 10 * 1024 * 1024  # a whole message, encoded, attachments included
DEFAULT_MAIL_RATE_SCOPE = "domain"
DEFAULT_MAIL_DEDUP_TTL = 7 * 86_400  # seconds a Message-ID is remembered as sent


@dataclass(frozen=True)
class SmtpSettings:
    host: str = DEFAULT_SMTP_HOST
    port: int = SMTP_DEFAULT_PORTS[DEFAULT_SMTP_SECURITY]
    security: str = DEFAULT_SMTP_SECURITY  # none, starttls, tls
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # None: the system's trusted CAs
    timeout: float = DEFAULT_SMTP_TIMEOUT  # seconds
    command_timeout: float = DEFAULT_SMTP_COMMAND_TIMEOUT  # seconds

    @classmethod
    def from_env(cls, env: Env) -> SmtpSettings:
        security = env.choice("SMTP_SECURITY", DEFAULT_SMTP_SECURITY, ("none", "starttls", "tls"))
        return cls(
            host=env.text("SMTP_HOST", DEFAULT_SMTP_HOST),
            port=env.integer("SMTP_PORT", SMTP_DEFAULT_PORTS[security], minimum=1, maximum=65535),
            security=security,
            username=env.optional_text("SMTP_USERNAME"),
            password=env.optional_text("SMTP_PASSWORD"),
            ca_file=env.optional_text("SMTP_CA_FILE"),
            timeout=env.number("SMTP_TIMEOUT", DEFAULT_SMTP_TIMEOUT, minimum=0.1),
            command_timeout=env.number(
                "SMTP_COMMAND_TIMEOUT", DEFAULT_SMTP_COMMAND_TIMEOUT, minimum=0.1
            ),
        )

    def tls_context(self) -> ssl.SSLContext:
        """Verifying context: the system's CAs, or only SMTP_CA_FILE when it is set."""
        return ssl.create_default_context(cafile=self.ca_file)


@dataclass(frozen=True)
class MailSettings:
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    sender: str | None = None  # SMTP_FROM: the sender when a task names none
    template_dir: str | None = None  # None: templates are refused
    max_bytes: int = DEFAULT_MAIL_MAX_BYTES  # a whole message, encoded
    rate_limit: tuple[int, float] | None = None  # (messages, per seconds); None: no limit
    rate_scope: str = DEFAULT_MAIL_RATE_SCOPE  # domain or global
    dedup_ttl: int = DEFAULT_MAIL_DEDUP_TTL  # seconds

    @classmethod
    def from_env(cls, env: Env) -> MailSettings:
        return cls(
            smtp=SmtpSettings.from_env(env),
            sender=env.optional_text("SMTP_FROM"),
            template_dir=env.optional_text("KIT_MAIL_TEMPLATE_DIR"),
            max_bytes=env.integer("KIT_MAIL_MAX_BYTES", DEFAULT_MAIL_MAX_BYTES, minimum=1024),
            rate_limit=env.rate("KIT_MAIL_RATE_LIMIT"),
            rate_scope=env.choice(
                "KIT_MAIL_RATE_LIMIT_SCOPE", DEFAULT_MAIL_RATE_SCOPE, ("domain", "global")
            ),
            dedup_ttl=env.integer("KIT_MAIL_DEDUP_TTL", DEFAULT_MAIL_DEDUP_TTL, minimum=60),
        )
