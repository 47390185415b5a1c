"""The short plain-text emails besides the digest: a subscription's confirmation link
and the organisers' daily alert. Their words live here; sending is `mail`'s."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from email.message import EmailMessage
from typing import TYPE_CHECKING

from ..config import Settings
from .mail import simple_message

if TYPE_CHECKING:
    from ..storage import Storage


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


def queue_health_alert(
    storage: Storage,
    settings: Settings,
    problems: Callable[[], list[str]],
    organisers: list[str],
    now: dt.datetime,
) -> tuple[bool, str]:
    """Queue today's alert to every organiser, with today's mark in the same transaction
    (so it is queued once however many workers try): whether it was queued, and a line
    saying what happened."""
    from .outbox import letter

    today = now.astimezone(settings.event.tz).date().isoformat()
    if storage.meta.get("health_alert_date") == today:
        return False, "organiser alert: already sent today"
    found = problems()
    if not found or not organisers:
        return False, "organiser alert: nothing to report"
    letters = [letter("alert", health_alert(settings, a, found, now)) for a in organisers]
    if not storage.outbox.add(letters, now, mark=("health_alert_date", today)):
        return False, "organiser alert: already sent today"  # by another worker, just now
    return True, f"organiser alert: {len(found)} problem(s) for {len(organisers)} organiser(s)"
