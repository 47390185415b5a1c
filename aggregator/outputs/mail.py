"""SMTP delivery shared by the digest and the outbox (confirmations, alerts)."""

from __future__ import annotations

import contextlib
import datetime as dt
import smtplib
import ssl
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Failure:
    """Why the mail server did not take a message, and what that means for the rest."""

    reason: str
    #: the server cannot be reached, dropped us or refuses our sender: the messages after
    #: this one wait for a later run, untried
    server_away: bool
    #: this message's address was refused for good (5xx): retrying it cannot help
    for_good: bool


def _said(error: smtplib.SMTPResponseException) -> str:
    text = error.smtp_error
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


def failure(error: Exception) -> Failure:
    """What `Mailer.send` raising `error` means. Only a refused recipient, or a message
    refused once its content was sent (too large, taken for spam), is that message's
    failure, and the batch goes on; for good only when the recipient is refused with a
    5xx (a content refusal may be the sender's set-up, fixed by the organiser, so it is
    retried). Anything else (a 421, a refused sender, a dropped connection, a reply
    smtplib cannot read) is the server's: the rest wait, untried, for a later run."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = error.recipients.values()
        reason = "; ".join(f"{code} {text.decode(errors='replace')}" for code, text in answers)
        codes = [code for code, _text in answers]
        return Failure(reason, 421 in codes, bool(codes) and min(codes) >= 500)
    if isinstance(error, smtplib.SMTPDataError):
        reason = f"the mail server: {error.smtp_code} {_said(error)}"
        return Failure(reason, error.smtp_code == 421, False)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        # smtplib's own refusal to send it as it is (an internationalised address to a
        # server without SMTPUTF8): the same each time
        return Failure(f"the mail server: {error}", False, True)
    if isinstance(error, DeliveryError):
        return Failure(str(error), True, False)
    if isinstance(error, smtplib.SMTPResponseException):
        return Failure(f"the mail server: {error.smtp_code} {_said(error)}", True, False)
    return Failure(f"the mail server: {error}", True, False)


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
