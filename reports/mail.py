"""SMTP: settings, MIME assembly and sending. The password never leaves ``SmtpSettings``."""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

log = logging.getLogger("vault_drift.mail")


class MailError(Exception):
    """A mail could not be sent; the message is safe to log (no password in it)."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    mail_from: str = ""
    mail_to: list[str] = field(default_factory=list)
    timeout: float = 10


def build_message(
    subject: str,
    html: str,
    text: str,
    images: dict[str, bytes],
    settings: SmtpSettings,
    *,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """multipart/alternative: text/plain, then multipart/related (HTML + PNGs by Content-ID)."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.mail_from
    message["To"] = ", ".join(settings.mail_to)
    if sent_at is not None:
        message["Date"] = format_datetime(sent_at)
    domain = settings.mail_from.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    html_part = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
    for cid, png in images.items():
        html_part.add_related(
            png,
            maintype="image",
            subtype="png",
            cid=f"<{cid}>",
            filename=f"{cid}.png",
            disposition="inline",
        )
    return message


def send(
    message: EmailMessage, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None
) -> None:
    """Deliver over SMTP: STARTTLS when set (never a silent downgrade), login when a user is set.

    ``tls_context`` defaults to the system's trust store; tests pass one trusting their CA.
    """
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=tls_context or ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            refused = smtp.send_message(
                message, from_addr=settings.mail_from, to_addrs=settings.mail_to
            )
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(_describe(exc, settings)) from None
    if refused:
        log.warning("SMTP %s refused recipients: %s", settings.host, ", ".join(sorted(refused)))


def _describe(exc: Exception, settings: SmtpSettings) -> str:
    detail = f"SMTP {settings.host}:{settings.port}: {type(exc).__name__}: {exc}"
    if settings.password:
        detail = detail.replace(settings.password, "***")
    return detail
