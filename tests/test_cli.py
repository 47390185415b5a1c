"""The `aggregator` command as an organiser uses it."""

from __future__ import annotations

import json
import subprocess
import sys

import feedparser
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.loopback import Response

from .conftest import item, rss, serve_feed

runner = CliRunner()


def write_config(tmp_path, database_url) -> str:
    path = tmp_path / "event.toml"
    path.write_text(
        f"""
[event]
name = "Co-production Week 2017"
site_url = "https://example.org/coproweek/"
timezone = "Europe/London"
tags = ["Co-production Week"]

[database]
url = "{database_url}"

[polling]
allow_private_addresses = true
timeout_seconds = 5

[publish]
output_dir = "{tmp_path / "out"}"
"""
    )
    return str(path)


def run(config, *args):
    result = runner.invoke(app, ["--config", config, *args], catch_exceptions=False)
    return result


def test_organiser_session(tmp_path, site, database_url):
    config = write_config(tmp_path, database_url)
    good = serve_feed(
        site,
        "/good",
        rss(
            item("Hello", guid="1", link="http://g.example/1", categories=("Co-production Week",)),
            title="Good",
        ),
    )
    serve_feed(site, "/bad", rss(item("x", guid="x")))

    added = run(config, "contributors", "add", "Ann", good)
    assert added.exit_code == 0, added.output
    assert f"Added feed {good}" in added.output and "1 entries" in added.output
    assert run(config, "contributors", "add", "Bob", site.url("/bad")).exit_code == 0
    site.routes["/bad"] = Response(b"oops", status=500, content_type="text/plain")

    listed = json.loads(run(config, "contributors", "list", "--json").output)
    assert [(c["name"], [f["url"] for f in c["feeds"]]) for c in listed] == [
        ("Ann", [good]),
        ("Bob", [site.url("/bad")]),
    ]

    polled = run(config, "poll")
    assert polled.exit_code == 0  # a poll with a failed feed still did its job
    assert "feeds: 1 fetched, 0 not modified, 1 failed; posts: 1 new, 0 updated, 0 duplicate" in (
        polled.output.replace("\n", " ")
    )

    status = run(config, "status")
    assert "server error (500)" in status.output
    assert "Ann" in status.output and "ok" in status.output

    assert run(config, "publish").exit_code == 0
    feed = feedparser.parse(str(tmp_path / "out" / "feed.atom"))
    assert [e.title for e in feed.entries] == ["Hello"]

    exported = run(config, "contributors", "export")
    assert good in exported.output and exported.output.startswith("<?xml")

    # hiding republishes at once, as the dashboard's button does
    assert run(config, "posts", "hide", "http://g.example/1").exit_code == 0
    assert feedparser.parse(str(tmp_path / "out" / "feed.atom")).entries == []

    removed = run(config, "contributors", "remove", "Ann")
    assert "Removed Ann and 1 post(s)." in removed.output


def test_errors_are_one_line_without_traceback(tmp_path, site, database_url):
    config = write_config(tmp_path, database_url)
    site.routes["/"] = Response(b"<html><head></head></html>", content_type="text/html")
    result = runner.invoke(app, ["--config", config, "contributors", "add", "X", site.url("/")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().startswith("error: no feed found at")
    bad = tmp_path / "bad.toml"
    bad.write_text("[event]\nname = 3\n")
    result = runner.invoke(app, ["--config", str(bad), "status"])
    assert result.exit_code == 1
    assert "event.name: Input should be a valid string" in result.output


def _command_paths(group, prefix=()):
    """Every command and subcommand of the CLI, as argument lists."""
    import typer.main

    click_group = typer.main.get_command(app) if group is None else group
    for name, command in click_group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _command_paths(command, (*prefix, name))


def test_every_command_and_subcommand_has_help():
    paths = list(_command_paths(None))
    # the walk must see the subcommands, or this test would check little
    assert ("contributors", "add") in paths and ("organisers", "add") in paths
    assert len(paths) >= 25
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, path
        summary = result.output.split("Usage", 1)[1]
        assert len(summary.strip().splitlines()) >= 2, f"{path} has no help text"


def test_python_dash_m_aggregator_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Collect the posts contributors write" in result.stdout


def test_demo_runs_offline_and_publishes_a_valid_feed(tmp_path):
    """The README's first command, as a real process."""
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "demo", "--output-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "posts: 7 new, 0 updated, 1 duplicate" in result.stdout.replace("\n", " ")
    feed = feedparser.parse(str(tmp_path / "demo" / "feed.atom"))
    assert feed.bozo == 0
    assert len(feed.entries) == 7
    assert {e.author for e in feed.entries} == {
        "Patrick Wood",
        "Four Seasons Community Trust",
        "Jo Ellis",
        "Sam Okafor",
        "Lee Brown",
    }
    assert str(tmp_path / "demo" / "index.html") in result.stdout


def test_a_database_inside_the_published_folder_is_refused(tmp_path):
    """A static server of output/ would hand out the session key and subscribers."""
    out = tmp_path / "out"
    config = tmp_path / "event.toml"
    config.write_text(
        f'[event]\nname = "W"\n[database]\nurl = "sqlite:///{out / "aggregator.db"}"\n'
        f'[publish]\noutput_dir = "{out}"\n'
    )
    result = runner.invoke(app, ["--config", str(config), "status"])
    assert result.exit_code == 1
    assert "is inside publish.output_dir" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (out / "aggregator.db").exists()


def test_the_default_database_is_outside_the_published_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGGREGATOR_DATABASE_URL", raising=False)
    (tmp_path / "event.toml").write_text('[event]\nname = "W"\n')
    result = runner.invoke(app, ["--config", "event.toml", "init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "aggregator.db").exists()
    assert not list((tmp_path / "output").rglob("*.db*"))


def test_organisers_are_added_listed_and_removed(tmp_path, database_url):
    config = write_config(tmp_path, database_url)
    added = runner.invoke(
        app, ["--config", config, "organisers", "add", "Org@Example.org", "--password", "x" * 12]
    )
    assert added.exit_code == 0, added.output
    assert (
        "org@example.org" in runner.invoke(app, ["--config", config, "organisers", "list"]).output
    )
    removed = runner.invoke(app, ["--config", config, "organisers", "remove", "org@example.org"])
    assert removed.exit_code == 0 and "Removed organiser" in removed.output
    again = runner.invoke(app, ["--config", config, "organisers", "remove", "org@example.org"])
    assert again.exit_code == 1 and "no organiser account" in again.output


def test_a_database_reached_through_a_link_in_the_published_folder_is_refused(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    out.mkdir()
    data.mkdir()
    (out / "db.sqlite").symlink_to(data / "db.sqlite")
    config = tmp_path / "event.toml"
    config.write_text(
        f'[event]\nname = "W"\n[database]\nurl = "sqlite:///{out / "db.sqlite"}"\n'
        f'[publish]\noutput_dir = "{out}"\n'
    )
    result = runner.invoke(app, ["--config", str(config), "status"])
    assert result.exit_code == 1 and "is inside publish.output_dir" in result.output


def test_an_old_default_database_in_the_published_folder_must_be_moved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGGREGATOR_DATABASE_URL", raising=False)
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "aggregator.db").write_bytes(b"")  # where 0.1.0 kept it
    (tmp_path / "event.toml").write_text('[event]\nname = "W"\n')
    result = runner.invoke(app, ["--config", "event.toml", "status"])
    assert result.exit_code == 1
    assert "mv output/aggregator.db* data/" in result.output
    assert not (tmp_path / "data" / "aggregator.db").exists()  # no empty database made


def test_outbox_fails_when_the_mail_server_takes_nothing(tmp_path, database_url):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, database_url)
    with open(config, "a") as handle:
        handle.write(f'\n[digest]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n')
    from pathlib import Path

    from aggregator.config import load_settings
    from aggregator.core import Aggregator

    with Aggregator(load_settings(Path(config))) as agg:
        agg.request_subscription("ann@example.org", lambda t: f"https://x.example/confirm/{t}")
    result = runner.invoke(app, ["--config", config, "outbox"])
    assert result.exit_code == 1
    assert "cannot reach the mail server" in result.output
    assert "0 sent, 1 waiting" in result.output


def test_the_demo_will_not_empty_a_folder_that_is_not_its_own(tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    result = runner.invoke(app, ["demo", "--output-dir", str(folder)])
    assert result.exit_code == 1 and "not a demo's folder" in result.output
    assert (folder / "thesis.txt").exists()


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = tmp_path / "event.toml"
    config.write_text(
        f'[event]\nname = "W"\n[database]\nurl = "sqlite:///{tmp_path / "data" / "a.db"}"\n'
        f'[publish]\noutput_dir = "{blocker / "out"}"\n'
    )
    result = runner.invoke(app, ["--config", str(config), "status"])
    assert result.exit_code == 1
    assert "publish.output_dir: cannot create" in result.output
    assert len(result.output.strip().splitlines()) == 1
