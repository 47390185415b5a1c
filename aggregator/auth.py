"""Organiser passwords (argon2), shared by the CLI that sets them and the web app that
checks them; and the one definition of a normalised email address."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .errors import AggregatorError

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_PASSWORD_LENGTH = 10


@functools.cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher  # imported when used: most commands never are

    return PasswordHasher()


@functools.cache
def _unknown_account_hash() -> str:
    # checked against when the address has no account, so a wrong address costs the
    # same work (and time) as a wrong password
    return _hasher().hash("no account has this password")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AggregatorError(f"choose a password of at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; the same work is done when there is no account."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        ok = _hasher().verify(stored_hash or _unknown_account_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None


def normalise_email(address: str) -> str:
    """The address as stored and compared (syntax checked, no DNS look-up).

    Raises AggregatorError with a readable reason when it is not an address."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise AggregatorError(f"{address!r} is not a valid email address: {e}") from None


def organiser_key(address: str) -> str:
    """Organiser accounts are looked up case-insensitively."""
    return normalise_email(address).lower()
