"""WebSub subscriber (W3C Recommendation): new posts pushed by a feed's hub within
seconds, instead of at the next poll.

A poll notes the hub a feed names (in its answer's `Link` header,
`decide.header_hub_links`, else in the feed, `decide.hub_links`); the worker then asks
the hub to subscribe, with a callback under `site_url` (`websub/<token>`, one
unguessable token per feed), a per-subscription secret and a lease, and renews the
lease before it ends. The hub verifies our intent with a GET to the callback: we echo
`hub.challenge` only for the mode and topic we asked for. Content distributions are
POSTs to the callback signed `X-Hub-Signature: sha256=…` (HMAC with the secret):
unsigned or badly signed ones are dropped; the rest go through the poll's own deciding
and storing. A removed feed's subscription is ended the same way. Requests to hubs go
through the feeds' guarded client: a hostile feed cannot make us post to a private
address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config import Settings
from ..errors import FeedError
from ..states import PushState
from ..storage import Storage
from .decide import PreparedFeed, prepare_feed
from .fetch import FetchLimits, open_client, post_form
from .match import EventRules

log = logging.getLogger(__name__)
#: how long we ask hubs to push for (they may grant less); renewed a day before the end
LEASE_SECONDS = 10 * 24 * 3600
#: WebSub's signature methods (sha1 too: widely used hubs, Blogger's among them, sign so)
_DIGESTS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


@dataclass
class WebSub:
    storage: Storage
    settings: Settings
    rules: EventRules
    limits: FetchLimits
    clock: Callable[[], dt.datetime]

    def callback(self, token: str) -> str:
        return f"{self.settings.event.site_url}websub/{token}"

    def send_requests(self) -> list[str]:
        """Ask hubs to subscribe (new subscriptions, leases ending within a day) or to
        unsubscribe (removed feeds); one line per request."""
        return asyncio.run(self._send_requests())

    async def _send_requests(self) -> list[str]:
        subs = self.storage.websub
        lines: list[str] = []
        due = subs.due(self.clock())
        if not due:
            return lines
        async with open_client(4, self.limits) as (client, _gate):
            for sub in due:
                leaving = sub.state is PushState.UNSUBSCRIBING
                form = {
                    "hub.mode": "unsubscribe" if leaving else "subscribe",
                    "hub.topic": sub.topic,
                    "hub.callback": self.callback(sub.token),
                }
                if not leaving:
                    form |= {"hub.secret": sub.secret, "hub.lease_seconds": str(LEASE_SECONDS)}
                try:
                    status = await post_form(client, sub.hub, form, self.limits)
                    error = None if 200 <= status < 300 else f"the hub answered {status}"
                except FeedError as e:
                    error = f"the hub: {e.reason}"
                subs.requested(sub.feed_id, self.clock(), error)
                lines.append(
                    f"websub: {form['hub.mode']} {sub.topic} at {sub.hub}: {error or 'asked'}"
                )
        return lines

    def verify(self, token: str, params: Mapping[str, str]) -> str | None:
        """A hub's verification of intent: the challenge to echo, or None (404) when this
        is not what we asked for."""
        sub = self.storage.websub.by_token(token)
        mode, topic = params.get("hub.mode"), params.get("hub.topic")
        if sub is None or topic != sub.topic:
            return None
        challenge = params.get("hub.challenge")
        if mode == "denied":
            reason = params.get("hub.reason", "no reason given")[:300]
            self.storage.websub.set_state(sub.feed_id, PushState.DENIED, reason)
            return ""
        if not challenge:
            return None
        if mode == "subscribe" and sub.state in (PushState.SUBSCRIBING, PushState.ACTIVE):
            try:
                seconds = max(60, int(params.get("hub.lease_seconds", LEASE_SECONDS)))
            except ValueError:
                return None
            until = self.clock() + dt.timedelta(seconds=min(seconds, 366 * 24 * 3600))
            self.storage.websub.verified(sub.feed_id, until)
            return challenge
        if mode == "unsubscribe" and sub.state is PushState.UNSUBSCRIBING:
            self.storage.websub.forget(sub.feed_id)
            return challenge
        return None

    def accepts(self, token: str) -> bool:
        """Whether pushes to this callback are taken (checked before reading a body)."""
        sub = self.storage.websub.by_token(token)
        return sub is not None and sub.state is PushState.ACTIVE

    def receive(self, token: str, body: bytes, content_type: str, signature: str) -> bool:
        """A content distribution: stored like a poll's when it is signed with the
        subscription's secret; True when it changed the posts."""
        subs = self.storage.websub
        sub = subs.by_token(token)
        if sub is None or sub.state is not PushState.ACTIVE:
            return False
        method, _, given = signature.partition("=")
        digest = _DIGESTS.get(method.strip().lower())
        expected = hmac.new(sub.secret.encode(), body, digest).hexdigest() if digest else ""
        # bytes: a header of any characters compares (as False), it never raises
        offered = given.strip().lower().encode("utf-8", "replace")
        if not expected or not hmac.compare_digest(expected.encode(), offered):
            log.warning("websub: a push for %s without a valid signature was dropped", sub.topic)
            return False
        target = self.storage.feeds.target(sub.feed_id)
        if target is None:
            return False
        now = self.clock()
        prepared = prepare_feed(body, sub.topic, content_type, self.rules, target.all_posts, now)
        if not isinstance(prepared, PreparedFeed):
            log.warning("websub: a push for %s could not be read: %s", sub.topic, prepared.reason)
            return False
        counts = self.storage.posts.store(
            target.feed_id, target.contributor_id, prepared.intents, now
        )
        subs.pushed(sub.feed_id, now)
        return bool(counts.new or counts.updated)
