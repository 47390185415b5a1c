"""The `Aggregator`'s methods for people: digest subscribers, organisers' accounts and
sessions, the outbox, and the web app's shared rate limits. A part of the one door
(`core.Aggregator` inherits it), kept in a file of its own."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import auth
from .errors import AggregatorError

if TYPE_CHECKING:
    from .config import Settings
    from .outputs.outbox import OutboxReport
    from .storage import Storage
    from .storage.outbox import Letter
    from .storage.subscribers import SubscriberRow


class People:
    if TYPE_CHECKING:
        storage: Storage
        settings: Settings

        def now(self) -> dt.datetime: ...

    def add_subscriber(self, email: str) -> tuple[str, bool]:
        """Validate (syntax only) and add; returns the normalised address and whether it is new."""
        address = auth.normalise_email(email)
        return address, self.storage.subscribers.add(address, self.now())

    def request_subscription(self, email: str, confirm_url: Callable[[str], str]) -> None:
        """Double opt-in: email a confirmation link, unless the address already subscribes.

        Says nothing about whether the address was known (the caller shows one answer)."""
        from .outputs import notices
        from .outputs.outbox import letter

        address = auth.normalise_email(email)

        def confirmation(token: str) -> Letter:
            message = notices.confirmation(self.settings, address, confirm_url(token), self.now())
            return letter("confirmation", message)

        # queued with the subscription in one transaction; `send_outbox` delivers it
        self.storage.subscribers.request(address, self.now(), confirmation)

    def send_outbox(self) -> OutboxReport:
        """Send the emails waiting in the outbox that are due (see outputs/outbox.py)."""
        from .outputs.outbox import send_due

        return send_due(self.storage.outbox, self.settings, self.now())

    def confirm_subscription(self, token: str) -> str | None:
        return self.storage.subscribers.confirm(token)

    def subscription_to_confirm(self, token: str) -> str | None:
        """The address a confirmation link would subscribe, or None (changes nothing)."""
        return self.storage.subscribers.pending(token)

    def subscriber_for_token(self, token: str) -> str | None:
        """The address an unsubscribe link belongs to, or None."""
        return self.storage.subscribers.by_token(token)

    def unsubscribe(self, token: str) -> str | None:
        return self.storage.subscribers.unsubscribe_token(token, self.now())

    def remove_subscriber(self, email: str) -> None:
        with contextlib.suppress(AggregatorError):  # else remove it as it was stored
            email = auth.normalise_email(email)
        self.storage.subscribers.remove(email, self.now())

    def subscribers(self) -> list[SubscriberRow]:
        return self.storage.subscribers.all()

    def add_organiser(self, email: str, password: str) -> str:
        """Create an organiser account (or set a new password); returns the address."""
        address = auth.organiser_key(email)
        self.storage.accounts.add_organiser(address, auth.hash_password(password), self.now())
        return address

    def check_login(self, email: str, password: str) -> tuple[str, int] | None:
        """The organiser's address and session number when the password is right, else
        None (the same work either way)."""
        try:
            address: str | None = auth.organiser_key(email)
        except AggregatorError:
            address = None
        accounts = self.storage.accounts
        stored = accounts.organiser_hash(address) if address else None
        if address is None or not auth.verify_password(stored, password):
            return None
        version = accounts.session_version(address)
        return None if version is None else (address, version)

    def session_is_current(self, email: str, version: int) -> bool:
        """False once the organiser logged out, changed password or was removed."""
        return self.storage.accounts.session_version(email) == version

    def end_sessions(self, email: str) -> None:
        """Log an organiser out everywhere."""
        self.storage.accounts.end_sessions(email)

    def remove_organiser(self, email: str) -> None:
        """Delete the account; its sessions end with it."""
        self.storage.accounts.remove_organiser(auth.organiser_key(email))

    def organisers(self) -> list[str]:
        return self.storage.accounts.organiser_emails()

    def allow(self, limit: str, key: str, hits: int, seconds: float) -> bool:
        """Count a hit on a shared rate limit: False once `key` made more than `hits` in
        `seconds`, in any process."""
        return self.storage.rates.hit(limit, key, hits, dt.timedelta(seconds=seconds), self.now())

    def session_secret(self) -> str:
        return self.storage.meta.secret_key()
