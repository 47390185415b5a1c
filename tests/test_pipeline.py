"""Matching and "one post, once", end to end: real XML over loopback HTTP, checked in
the published feed.atom."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from aggregator.loopback import Response

from .conftest import atom, atom_entry, item, published, rss, serve_feed, titles


def add(agg, site, name, path, body, **kw):
    url = serve_feed(site, path, body)
    agg.add_contributor(name, url, feed=url, **kw)
    return url


# ---- what counts as an event post ----


def test_blogger_labels_and_untagged_posts(make_agg, site):
    agg = make_agg()
    add(
        agg,
        site,
        "Patrick",
        "/patrick.atom",
        atom(
            atom_entry(
                "Tagged", id="p1", link="http://b.example/1", categories=("Co-production Week",)
            ),
            atom_entry("Allotment", id="p2", link="http://b.example/2", categories=("beans",)),
            atom_entry(
                "Other spelling",
                id="p3",
                link="http://b.example/3",
                categories=("coproduction week",),
            ),
        ),
    )
    summary = agg.update_feeds()
    assert summary.new == 2
    assert sorted(titles(agg)) == ["Other spelling", "Tagged"]


def test_wordpress_categories_atom_label_and_hashtags(make_agg, site):
    agg = make_agg()
    add(
        agg,
        site,
        "WP",
        "/wp",
        rss(
            item(
                "By category",
                guid="w1",
                link="http://wp.example/1",
                categories=("CoProduction_Week",),
            ),
            item(
                "By hashtag in a span",
                guid="w2",
                link="http://wp.example/2",
                content="<p>Day one! <a href='/tags/x'>#<span>CoProductionWeek</span></a></p>",
            ),
            item(
                "Hashtag inside a word is not one",
                guid="w3",
                link="http://wp.example/3",
                content="<p>see page#CoProductionWeek</p>",
            ),
            item("Hashtag in the title #CoProductionWeek", guid="w4", link="http://wp.example/4"),
        ),
    )
    add(
        agg,
        site,
        "Atom",
        "/atom",
        atom(
            "<entry><id>a1</id><updated>2017-07-04T09:00:00Z</updated><title>Label only</title>"
            "<category term='x1' label='Co-production week'/>"
            "<content type='text'>hi</content></entry>"
        ),
    )
    agg.update_feeds()
    assert sorted(titles(agg)) == [
        "By category",
        "By hashtag in a span",
        "Hashtag in the title #CoProductionWeek",
        "Label only",
    ]


def test_keywords_in_visible_text_only(make_agg, site):
    agg = make_agg()
    add(
        agg,
        site,
        "Sam",
        "/sam",
        rss(
            item(
                "Letter",
                guid="s1",
                link="http://s.example/1",
                content="<p>The last day of Co-Production\nWeek, and</p>",
            ),
            item(
                "Block elements separate words",
                guid="s2",
                link="http://s.example/2",
                content="<p>co-production</p><p>week</p>",
            ),
            item(
                "Attribute only",
                guid="s3",
                link="http://s.example/3",
                content='<p><img alt="x" title="co-production week" src="/a.png">nothing</p>',
            ),
            item(
                "Longer word",
                guid="s4",
                link="http://s.example/4",
                content="<p>coproduction weekly meeting</p>",
            ),
        ),
    )
    agg.update_feeds()
    assert sorted(titles(agg)) == ["Block elements separate words", "Letter"]


def test_all_posts_contributor_counts_everything_in_window(make_agg, site):
    agg = make_agg(event={"collect_from": "2017-07-01", "collect_until": "2017-07-07"})
    add(
        agg,
        site,
        "Event blog",
        "/event",
        rss(
            item("Untagged but dedicated", guid="e1", link="http://e.example/1"),
            item(
                "Too early",
                guid="e2",
                link="http://e.example/2",
                date="Fri, 30 Jun 2017 22:30:00 +0000",
            ),  # 23:30 in London: still 30 June
            item(
                "First minute, London time",
                guid="e3",
                link="http://e.example/3",
                date="Fri, 30 Jun 2017 23:00:00 +0000",
            ),  # 00:00 on 1 July in London
            item(
                "Last day",
                guid="e4",
                link="http://e.example/4",
                date="Fri, 07 Jul 2017 22:59:00 +0000",
            ),
            item(
                "Too late",
                guid="e5",
                link="http://e.example/5",
                date="Fri, 07 Jul 2017 23:00:00 +0000",
            ),
        ),
        all_posts=True,
    )
    agg.update_feeds()
    assert sorted(titles(agg)) == [
        "First minute, London time",
        "Last day",
        "Untagged but dedicated",
    ]


def test_a_post_that_later_gains_the_tag_counts(make_agg, site, clock):
    agg = make_agg()
    url = add(agg, site, "WP", "/wp", rss(item("Draft", guid="g1", link="http://wp.example/g1")))
    agg.update_feeds()
    assert titles(agg) == []
    serve_feed(
        site,
        "/wp",
        rss(
            item(
                "Draft", guid="g1", link="http://wp.example/g1", categories=("Co-production Week",)
            )
        ),
    )
    clock.advance(hours=1)
    agg.update_feeds()
    assert titles(agg) == ["Draft"]
    assert url


# ---- one post, once ----


def test_refetch_makes_no_second_post_and_edits_update_in_place(make_agg, site, clock):
    agg = make_agg()
    tagged = ("Co-production Week",)
    add(
        agg,
        site,
        "WP",
        "/wp",
        rss(
            item(
                "Original",
                guid="x1",
                link="http://wp.example/x1",
                categories=tagged,
                content="<p>First version.</p>",
            )
        ),
    )
    assert agg.update_feeds().new == 1
    clock.advance(hours=1)
    second = agg.update_feeds(include_not_due=True)
    assert (second.new, second.updated) == (0, 0)
    serve_feed(
        site,
        "/wp",
        rss(
            item(
                "Edited title",
                guid="x1",
                link="http://wp.example/x1",
                categories=tagged,
                content="<p>Second version.</p>",
            )
        ),
    )
    clock.advance(hours=1)
    third = agg.update_feeds(include_not_due=True)
    assert (third.new, third.updated) == (0, 1)
    entries = published(agg)
    assert [e.title for e in entries] == ["Edited title"]
    assert "Second version." in entries[0].content[0].value


def test_identity_falls_back_to_link_then_title_and_date(make_agg, site, clock):
    agg = make_agg()
    tagged = ("Co-production Week",)
    body = rss(
        item("No guid", link="http://wp.example/a?utm_source=rss#comments", categories=tagged),
        item("No guid, no link", categories=tagged, content="<p>short</p>"),
    )
    add(agg, site, "WP", "/wp", body)
    assert agg.update_feeds().new == 2
    # the same entries again, the link now without its tracking parameter
    serve_feed(site, "/wp", body.replace(b"?utm_source=rss#comments", b""))
    clock.advance(hours=1)
    assert agg.update_feeds(include_not_due=True).new == 0
    assert sorted(titles(agg)) == ["No guid", "No guid, no link"]


def test_cross_post_by_link_and_by_text_keeps_the_first_copy(make_agg, site, clock):
    agg = make_agg()
    text = (
        "<p>"
        + "Our peer support groups were redesigned by the people who attend them. " * 3
        + "</p>"
    )
    add(
        agg,
        site,
        "Seasons",
        "/seasons",
        rss(
            item(
                "Peer support",
                guid="s-1",
                link="https://seasons.example/peer?utm_medium=feed",
                categories=("Co-production Week",),
                content=text,
            ),
        ),
    )
    agg.update_feeds()
    clock.advance(minutes=5)
    add(
        agg,
        site,
        "Jo",
        "/jo",
        rss(
            item(
                "Peer support (cross-post by link)",
                guid="jo-1",
                link="HTTPS://Seasons.Example:443/peer#top",
                categories=("Co-production Week",),
            ),
            item(
                "Peer support (copied text)",
                guid="jo-2",
                link="https://jo.example/copy",
                categories=("Co-production Week",),
                content=text.replace("<p>", "<div>"),
            ),
        ),
    )
    summary = agg.update_feeds()
    assert (summary.new, summary.duplicates) == (0, 2)
    entries = published(agg)
    assert [(e.title, e.author) for e in entries] == [("Peer support", "Seasons")]
    # polling again does not count the same duplicates twice
    clock.advance(hours=1)
    assert agg.update_feeds(include_not_due=True).duplicates == 0


def test_ids_moving_from_http_to_https_are_the_same_post(make_agg, site, clock):
    agg = make_agg()
    tagged = ("Co-production Week",)
    add(
        agg,
        site,
        "Blog",
        "/b",
        rss(
            item(
                "Moved", guid="http://b.example/p/1", link="http://b.example/p/1", categories=tagged
            )
        ),
    )
    agg.update_feeds()
    serve_feed(
        site,
        "/b",
        rss(
            item(
                "Moved",
                guid="https://b.example/p/1",
                link="https://b.example/p/1",
                categories=tagged,
            )
        ),
    )
    clock.advance(hours=1)
    summary = agg.update_feeds(include_not_due=True)
    assert (summary.new, summary.duplicates) == (0, 1)
    assert titles(agg) == ["Moved"]


def test_duplicate_ids_inside_one_feed_make_one_post(make_agg, site):
    agg = make_agg()
    tagged = ("Co-production Week",)
    add(
        agg,
        site,
        "Blog",
        "/b",
        rss(
            item("Newest copy", guid="same", link="http://b.example/1", categories=tagged),
            item("Older copy", guid="same", link="http://b.example/1", categories=tagged),
        ),
    )
    agg.update_feeds()
    assert titles(agg) == ["Newest copy"]


# ---- polite polling ----


def test_conditional_get_second_poll_is_not_modified(make_agg, site, clock):
    agg = make_agg()
    add(agg, site, "Blog", "/b", rss(item("One", guid="1", categories=("Co-production Week",))))
    site.requests.clear()
    first = agg.update_feeds()
    clock.advance(hours=1)
    second = agg.update_feeds()
    assert (first.fetched, second.not_modified, second.new) == (1, 1, 0)
    conditional = site.hits("/b")[-1].headers
    assert conditional.get("If-None-Match", "").startswith('"')
    assert conditional.get("If-Modified-Since") == "Mon, 03 Jul 2017 08:00:00 GMT"
    assert titles(agg) == ["One"]


def test_feeds_not_due_are_skipped_unless_all(make_agg, site, clock):
    agg = make_agg()
    add(agg, site, "Blog", "/b", rss(item("One", guid="1", categories=("Co-production Week",))))
    agg.update_feeds()
    clock.advance(minutes=5)
    assert agg.update_feeds().results == []
    assert len(agg.update_feeds(include_not_due=True).results) == 1


def test_permanent_redirect_updates_the_stored_url(make_agg, site):
    agg = make_agg()
    body = rss(item("One", guid="1", categories=("Co-production Week",)))
    add(agg, site, "Blog", "/old", body)
    serve_feed(site, "/new", body)
    site.routes["/old"] = Response(status=301, headers={"Location": "/new"})
    site.routes["/tmp"] = Response(status=302, headers={"Location": "/new"})
    agg.update_feeds()
    assert [row.url for row in agg.status()] == [site.url("/new")]


def test_one_failing_feed_does_not_stop_the_others(make_agg, site):
    agg = make_agg()
    add(agg, site, "Good", "/good", rss(item("Fine", guid="1", categories=("Co-production Week",))))
    add(agg, site, "Bad", "/bad", rss(item("x", guid="2")))
    site.routes["/bad"] = Response(b"<html><body>Sorry</body></html>", content_type="text/html")
    summary = agg.update_feeds()
    assert (summary.fetched, summary.failed) == (1, 1)
    assert titles(agg) == ["Fine"]
    bad = next(row for row in agg.storage.feeds.feed_rows() if row.contributor == "Bad")
    assert (bad.last_result, bad.last_error, bad.error_count) == (
        "failed",
        "not a feed (got an HTML page)",
        1,
    )


def processes_from_the_start(monkeypatch) -> None:
    import aggregator.pipeline.parsepool

    monkeypatch.setattr(aggregator.pipeline.parsepool, "PARSE_IN_PROCESSES_FROM", 1)
    monkeypatch.setattr(aggregator.pipeline.parsepool, "BACKLOG_FOR_PROCESSES", 0)


def test_large_polls_parse_in_worker_processes_with_the_same_results(
    make_agg, site, monkeypatch, caplog
):
    import aggregator.pipeline.poll
    from aggregator.pipeline.parsepool import ParsePool

    pools: list[ParsePool] = []

    def started_pool(thread, feeds):  # workers up before the first feed, so all parse there
        pool = ParsePool(thread)
        assert pool.start(), "the worker processes did not start"
        pools.append(pool)
        return pool

    monkeypatch.setattr(aggregator.pipeline.poll, "make_parser", started_pool)
    caplog.set_level("INFO", logger="aggregator.pipeline.parsepool")
    agg = make_agg()
    add(agg, site, "A", "/a", rss(item("From A", guid="a", categories=("Co-production Week",))))
    add(agg, site, "B", "/b", rss(item("Not tagged", guid="b")))
    add(agg, site, "C", "/c", rss(item("c", guid="c")))
    site.routes["/c"] = Response(b"<html><body>gone</body></html>", content_type="text/html")
    summary = agg.update_feeds()
    assert (summary.fetched, summary.failed, summary.new) == (2, 1, 1)
    assert titles(agg) == ["From A"]
    assert next(r for r in agg.status() if r.contributor == "C").reason == (
        "not a feed (got an HTML page)"
    )
    assert pools and pools[0].uses_processes
    assert "parsing in" in caplog.text and "worker processes" in caplog.text
    assert "cannot start" not in caplog.text and "died" not in caplog.text


def test_a_small_poll_parses_in_this_process(make_agg, site, caplog):
    caplog.set_level("INFO", logger="aggregator.pipeline.parsepool")
    agg = make_agg()
    add(agg, site, "A", "/a", rss(item("From A", guid="a", categories=("Co-production Week",))))
    assert agg.update_feeds().new == 1
    assert "worker processes" not in caplog.text


def test_after_a_parse_process_dies_the_rest_of_the_poll_parses_here(monkeypatch):
    import os
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from aggregator.pipeline.parsepool import ParsePool

    processes_from_the_start(monkeypatch)
    with ThreadPoolExecutor(1) as thread, ParsePool(thread) as pool:
        assert pool.start(), "the worker processes did not start"
        assert pool.submit(os.getpid).result(timeout=60) != os.getpid()
        dying = pool.submit(os._exit, 3)  # a worker killed mid-parse
        with pytest.raises(BrokenProcessPool):
            dying.result(timeout=60)
        assert pool.submit(sum, [1, 2]).result(timeout=10) == 3
        assert not pool.uses_processes


def test_parsing_falls_back_to_this_process_when_workers_cannot_start(
    make_agg, site, monkeypatch, caplog
):
    import multiprocessing

    def no_processes(method):
        raise RuntimeError("An attempt has been made to start a new process before ...")

    processes_from_the_start(monkeypatch)
    monkeypatch.setattr(multiprocessing, "get_context", no_processes)
    agg = make_agg()
    add(agg, site, "A", "/a", rss(item("From A", guid="a", categories=("Co-production Week",))))
    add(agg, site, "B", "/b", rss(item("From B", guid="b", categories=("Co-production Week",))))
    summary = agg.update_feeds()
    assert (summary.fetched, summary.failed, summary.new) == (2, 0, 2)
    assert "worker processes cannot start" in caplog.text


def test_feeds_stored_in_one_batch_keep_one_post_once(make_agg, site, clock):
    """The processor stores several feeds per transaction: the rules must come out as if
    each feed were stored alone, in order (the first copy is the post, later copies
    its duplicates, whether in the same batch or not)."""
    from aggregator.pipeline.decide import prepare_feed

    agg = make_agg()
    a = add(agg, site, "A", "/a", rss())
    b = add(agg, site, "B", "/b", rss())
    ids = {row.url: (row.feed_id, row.contributor_id) for row in agg.storage.feeds.due(clock())}
    tag = ("Co-production Week",)
    shared = item("Cross-posted", guid="x", link="https://a.example/p", categories=tag)

    def intents(*items):
        body = rss(*items)
        return prepare_feed(body, a, "application/rss+xml", agg.rules, False, clock()).intents

    counts = agg.storage.posts.store_many(
        [
            (*ids[a], intents(shared, item("Only A", guid="a1", categories=tag))),
            (*ids[b], intents(item("Only B", guid="b1", categories=tag), shared)),
        ],
        clock(),
    )
    assert [(c.new, c.duplicates) for c in counts] == [(2, 0), (1, 1)]
    agg.publish()
    assert sorted(titles(agg)) == ["Cross-posted", "Only A", "Only B"]
    # stored again, alone: nothing is new, nothing is counted twice
    again = agg.storage.posts.store_many([(*ids[b], intents(shared))], clock())
    assert [(c.new, c.updated, c.duplicates) for c in again] == [(0, 0, 0)]


KILLED_POLL = """
import os, sys, time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import forkserver

import aggregator.pipeline.parsepool as parsepool

parsepool.BACKLOG_FOR_PROCESSES = 0
if __name__ == "__main__":
    with ThreadPoolExecutor(1) as thread:
        pool = parsepool.ParsePool(thread)
        while pool.submit(os.getpid).result() == os.getpid():  # until the workers are up
            time.sleep(0.05)
        workers = {pool.submit(os.getpid).result() for _ in range(10)}
        print(forkserver._forkserver._forkserver_pid, *workers, flush=True)
        time.sleep(120)  # killed here, mid-poll
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc to see processes")
def test_parse_processes_do_not_outlive_a_killed_poll(tmp_path):
    # a poll stopped by a timeout (cron's `timeout`, systemd) must not leave processes behind
    script = tmp_path / "poll.py"
    script.write_text(KILLED_POLL)
    poll = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in poll.stdout.readline().split()]
    finally:
        poll.kill()
        poll.wait()
    assert len(pids) >= 2, "the forkserver and at least one worker"
    deadline = time.monotonic() + 15
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if _running(pid)] == []
