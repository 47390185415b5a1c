"""The `subscribers` and `organisers` commands: the people who get the digest and the
people who run the dashboard. Registered on the groups `cli` makes."""

from __future__ import annotations

from typing import Annotated

import typer

from .cli import aggregator, friendly, organisers_app, say, subscribers_app


@subscribers_app.command("add")
@friendly
def subscribers_add(emails: Annotated[list[str], typer.Argument(help="Addresses to add.")]) -> None:
    """Add digest recipients (added by an organiser, so already confirmed)."""
    with aggregator() as agg:
        for email in emails:
            address, new = agg.add_subscriber(email)
            say(f"Added {address}" if new else f"{address} is already subscribed")


@subscribers_app.command("remove")
@friendly
def subscribers_remove(email: str) -> None:
    """Stop sending the digest to an address."""
    with aggregator() as agg:
        agg.remove_subscriber(email)
    say(f"Removed {email}")


@subscribers_app.command("list")
@friendly
def subscribers_list() -> None:
    """Show every subscriber and whether they still get the digest."""
    with aggregator() as agg:
        rows = agg.subscribers()
    if not rows:
        say("No subscribers yet. Add one with: aggregator subscribers add EMAIL")
        return
    from .cli_tables import print_table, subscribers_table

    print_table(subscribers_table(rows))
    say(f"{sum(r.active for r in rows)} of {len(rows)} get the digest.")


@organisers_app.command("add")
@friendly
def organisers_add(
    email: str,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Asked for when not given (recommended).",
        ),
    ],
) -> None:
    """Create an organiser account for /admin (or set a new password, which logs that
    organiser out everywhere)."""
    with aggregator() as agg:
        address = agg.add_organiser(email, password)
    say(f"Organiser {address} can now log in at /admin/login")


@organisers_app.command("remove")
@friendly
def organisers_remove(email: str) -> None:
    """Delete an organiser account; its open sessions end at once."""
    with aggregator() as agg:
        agg.remove_organiser(email)
    say(f"Removed organiser {email}")


@organisers_app.command("list")
@friendly
def organisers_list() -> None:
    """Show the organiser accounts (who gets the daily alert)."""
    with aggregator() as agg:
        emails = agg.organisers()
    for address in emails:
        say(address)
    if not emails:
        say("No organisers yet. Add one with: aggregator organisers add EMAIL")
