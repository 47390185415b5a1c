"""The short plain-text emails besides the digest: a subscription's confirmation link
and the organisers' daily alert. Their words live here; sending is `mail`'s."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

from ..config import Settings
from .mail import simple_message


def confirmation(
    settings: Settings, address: str, confirm_url: str, now: dt.datetime
) -> EmailMessage:
    name = settings.event.name
    text = (
        f"Someone (hopefully you) asked to get the daily {name} digest "
        f"at this address.\n\nTo confirm, open:\n{confirm_url}\n\n"
        "If it was not you, ignore this email: nothing will be sent.\n"
    )
    return simple_message(settings, address, f"Confirm your {name} digest", text, now)


def health_alert(
    settings: Settings, address: str, problems: list[str], now: dt.datetime
) -> EmailMessage:
    name = settings.event.name
    text = (
        f"Feeds of {name} that need a look:\n\n"
        + "\n".join(f"- {p}" for p in problems)
        + f"\n\nThe dashboard: {settings.event.site_url}admin\n"
    )
    return simple_message(settings, address, f"{name}: {len(problems)} feed problem(s)", text, now)
