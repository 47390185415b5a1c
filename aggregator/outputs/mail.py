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
    #: this message alone was refused for good (5xx): retrying it cannot help
    for_good: bool


#: answers about the connection or our sender, not about one message
_SERVER_WIDE = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    smtplib.SMTPHeloError,
    smtplib.SMTPAuthenticationError,
    smtplib.SMTPSenderRefused,
)


def failure(error: Exception) -> Failure:
    """What `Mailer.send` raising `error` means. A refused recipient, or a message refused
    after its content was sent (too large, rejected as spam), is that message's failure:
    the batch goes on. 421 ("closing the connection") and the connection's own errors stop
    the batch."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = error.recipients.values()
        reason = "; ".join(f"{code} {text.decode(errors='replace')}" for code, text in answers)
        return Failure(reason, False, all(code >= 500 for code, _text in answers))
    if isinstance(error, smtplib.SMTPResponseException):
        text = error.smtp_error
        said = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        reason = f"the mail server: {error.smtp_code} {said}"
        if isinstance(error, _SERVER_WIDE) or error.smtp_code == 421:
            return Failure(reason, True, False)
        return Failure(reason, False, error.smtp_code >= 500)
    if isinstance(error, DeliveryError):
        return Failure(str(error), True, False)
    if isinstance(error, _SERVER_WIDE) or not isinstance(error, smtplib.SMTPException):
        return Failure(f"the mail server: {error}", True, False)  # an OSError: gone
    # smtplib's own refusal to send it as it is (an internationalised address to a server
    # without SMTPUTF8): the same each time
    return Failure(f"the mail server: {error}", False, True)


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
