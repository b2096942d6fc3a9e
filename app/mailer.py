"""Outgoing mail over SMTP (smtplib; run in a worker thread).

Without ``SMTP_HOST`` (local development) messages are written to the log.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from app.settings import Settings

log = logging.getLogger("app.mail")


class MailError(RuntimeError):
    pass


def build_message(
    settings: Settings,
    to: str,
    subject: str,
    text: str,
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="aquascene.bg")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    return message


class MailSession:
    """One SMTP connection used for a batch of messages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> MailSession:
        s = self.settings
        if not s.smtp_host:
            return self
        try:
            if s.smtp_ssl:
                self.smtp = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=ssl.create_default_context()
                )
            else:
                self.smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
                if s.smtp_starttls:
                    self.smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                self.smtp.login(s.smtp_username, s.smtp_password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"cannot connect to SMTP server {s.smtp_host}:{s.smtp_port}: {exc}") from exc
        return self

    def send(self, message: EmailMessage) -> None:
        if self.smtp is None:
            log.info("mail (no SMTP_HOST configured) to=%s subject=%s\n%s", message["To"], message["Subject"], message.get_content())
            return
        try:
            refused = self.smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"SMTP delivery to {message['To']} failed: {exc}") from exc
        if refused:
            raise MailError(f"SMTP server refused {', '.join(refused)}")

    def __exit__(self, *exc_info: object) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (OSError, smtplib.SMTPException):
                self.smtp.close()


def send_one(settings: Settings, message: EmailMessage) -> None:
    with MailSession(settings) as session:
        session.send(message)
