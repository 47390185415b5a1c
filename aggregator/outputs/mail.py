"""SMTP delivery shared by the digest and the outbox (confirmations, alerts)."""

from __future__ import annotations

import contextlib
import datetime as dt
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from ..config import Settings
from ..errors import DeliveryError
from ..text import one_line


class Mailer:
    """One SMTP connection for a batch, opened on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings.digest
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        d = self.settings
        try:
            if d.smtp_security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    d.smtp_host, d.smtp_port, timeout=30, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(d.smtp_host, d.smtp_port, timeout=30)
                if d.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if d.smtp_user:
                smtp.login(d.smtp_user, d.smtp_password)
        except smtplib.SMTPAuthenticationError:
            raise DeliveryError(
                "the mail server refused the login: check digest.smtp_user and "
                "$AGGREGATOR_SMTP_PASSWORD"
            ) from None
        except (OSError, smtplib.SMTPException) as e:
            raise DeliveryError(
                f"cannot reach the mail server {d.smtp_host}:{d.smtp_port} ({e}); check "
                "digest.smtp_host, smtp_port and smtp_security"
            ) from None
        return smtp

    def send(self, msg: EmailMessage) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        self._smtp.send_message(msg)

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None


def sender_address(settings: Settings) -> Address:
    name, addr = parseaddr(settings.digest.sender)
    return Address(display_name=one_line(name), addr_spec=addr)


def simple_message(
    settings: Settings, to: str, subject: str, text: str, now: dt.datetime
) -> EmailMessage:
    """A plain-text email from the event's sender (confirmations, organiser alerts)."""
    sender = sender_address(settings)
    msg = EmailMessage()
    msg["Subject"] = one_line(subject)
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.domain or None)
    msg.set_content(text)
    return msg
