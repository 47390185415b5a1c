"""Pure stages, without HTTP or a database: config, matching, text, canonical links."""

from __future__ import annotations

import datetime as dt
import re
import sys
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import load_settings
from aggregator.errors import ConfigError
from aggregator.pipeline.dedupe import text_fingerprint
from aggregator.pipeline.match import EventRules
from aggregator.pipeline.sanitize import sanitize_html
from aggregator.text import (
    OTHER_SPACES,
    html_to_text,
    normalise_phrase,
    normalise_tag,
    one_line,
    strip_controls,
)
from aggregator.urls import canonical_url


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            '[event]\nname = "X"\n[polling]\nconcurrency = "many"\n',
            "polling.concurrency: Input should be a valid integer",
        ),
        ('[event]\nname = "X"\ncolour = "red"\n', "event.colour: unknown key"),
        (
            '[event]\nname = "X"\ntimezone = "Mars/Olympus"\n',
            "event.timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            '[event]\nname = "X"\ncollect_from = "someday"\n',
            "event.collect_from: Input should be a valid date",
        ),
        ("[event]\n", "event.name: required key is missing"),
        (
            '[event]\nname = "X"\n[digest]\nsend_at = "7.30am"\n',
            "digest.send_at: must be a time like '07:30'",
        ),
        ('[event\nname = "X"\n', "not valid TOML"),
    ],
)
def test_bad_config_is_refused_with_file_key_and_reason(tmp_path, text, problem):
    path = tmp_path / "event.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ": ")
    assert problem in message
    assert "\n" not in message


def test_example_config_loads_and_env_overrides_database(monkeypatch):
    monkeypatch.setenv("AGGREGATOR_DATABASE_URL", "sqlite:///elsewhere.db")
    settings = load_settings("config/event.toml")
    assert settings.event.name == "Co-production Week 2017"
    assert settings.event.collect_from == dt.date(2017, 5, 1)
    assert settings.database_url == "sqlite:///elsewhere.db"


def test_missing_config_says_how_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.delenv("AGGREGATOR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config/event.toml: no such file .*--config"):
        load_settings()


@pytest.mark.parametrize(
    "tag", ["Co-production Week", "coproduction week", "#CoProductionWeek", "co_production-week!"]
)
def test_tag_normalisation(tag):
    assert normalise_tag(tag) == "coproductionweek"


def test_phrase_normalisation():
    assert normalise_phrase("Co-Production\nWeek") == normalise_phrase("coproduction   week")


def test_rendered_text_joins_inline_and_splits_blocks():
    assert html_to_text("#<span>Co</span>Production<p>a</p><p>b</p>x<br>y &amp; z") == (
        "#CoProduction a b x y & z"
    )
    assert html_to_text('<img alt="a > b" src="x">text') == "text"


def rules(**kw):
    base = dict(
        tags=["Co-production Week"],
        keywords=["co-production week"],
        collect_from=None,
        collect_until=None,
        timezone=zoneinfo.ZoneInfo("Europe/London"),
    )
    base.update(kw)
    return EventRules.build(**base)


def test_hashtags_and_keywords_come_from_visible_text():
    r = rules()
    assert r.matches_topic((), "Day one #CoProductionWeek", "")
    assert r.matches_topic((), "", "it is co-production week!")
    assert not r.matches_topic((), "", "https://x.example/#CoProductionWeek")
    assert not r.matches_topic(("co-production",), "", "coproduction weeks")


def test_window_is_inclusive_in_the_event_time_zone():
    r = rules(collect_from=dt.date(2017, 7, 1), collect_until=dt.date(2017, 7, 7))
    london_midnight = dt.datetime(2017, 6, 30, 23, 0, tzinfo=dt.UTC)
    assert r.in_window(london_midnight)
    assert not r.in_window(london_midnight - dt.timedelta(seconds=1))
    assert r.in_window(dt.datetime(2017, 7, 7, 22, 59, tzinfo=dt.UTC))
    assert not r.in_window(dt.datetime(2017, 7, 7, 23, 0, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    "url, canonical",
    [
        (
            "HTTP://Blog.Example.COM:80/a/b?utm_source=x&id=3#frag",
            "http://blog.example.com/a/b?id=3",
        ),
        ("https://x.blogspot.com/2017/07/p.html?m=1", "https://x.blogspot.com/2017/07/p.html"),
        ("https://x.example/p?fbclid=abc&gclid=d", "https://x.example/p"),
        ("https://x.example:8443/p", "https://x.example:8443/p"),
        ("javascript:alert(1)", None),
    ],
)
def test_canonical_links(url, canonical):
    assert canonical_url(url) == canonical


def test_text_fingerprint_ignores_case_spacing_and_skips_short_texts():
    long = "A fairly long post about what co-production means to the people who do it. " * 2
    assert text_fingerprint(long) == text_fingerprint(long.upper().replace(" ", "  \n"))
    assert text_fingerprint("Photo") is None


@pytest.mark.parametrize(
    "dirty, clean",
    [
        ('<p onclick="x()">hi</p>', "<p>hi</p>"),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
        ('<img src="data:image/png;base64,AAAA">', "<img>"),
        ("<script>alert(1)</script>text", "text"),
        ('<p style="display:none">hidden</p>', "<p>hidden</p>"),
        ("<form action='/x'><input name=a>f</form>", "f"),
        ('<img src="a.png">', '<img src="https://b.example/dir/a.png">'),
        ('<img src="/a.png">', '<img src="https://b.example/a.png">'),
        ('<img src="https://pixel.wp.com/g.gif" width="1" height="1">', ""),
        (
            '<iframe src="https://video.example/embed/1"></iframe>',
            '<p><a href="https://video.example/embed/1" rel="noopener noreferrer">'
            "Watch the video: https://video.example/embed/1</a></p>",
        ),
        ("<svg><script>alert(1)</script></svg>ok", "ok"),
    ],
)
def test_sanitising(dirty, clean):
    assert sanitize_html(dirty, "https://b.example/dir/post.html") == clean


def test_every_setting_is_documented_in_the_readme():
    from dataclasses import fields
    from pathlib import Path

    from aggregator.config import Settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for section in fields(Settings):
        if section.name == "contributors":
            assert "[[contributors]]" in readme
            continue
        for key in fields(section.type):
            assert f"{section.name}.{key.name}" in readme or f"`{key.name}`" in readme, (
                f"{section.name}.{key.name}"
            )


def test_the_shortcuts_of_text_cleaning_hold_for_every_character():
    other = re.compile(f"[{OTHER_SPACES}]")
    control = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")  # text._CONTROL
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert bool(other.fullmatch(char)) == (char.isspace() and char != " "), hex(code)
        if char.isprintable():  # strip_controls and one_line skip printable text
            assert not control.match(char) and not other.match(char), hex(code)


SPACEY = st.text(st.sampled_from(list("ab -\u2010\t\n\r\x0b\x1c\x85\xa0\u2028\u3000\x00\x7fÉß  ")))


@given(SPACEY)
def test_collapsing_whitespace_takes_shortcuts_without_changing_the_result(value):
    assert one_line(value) == " ".join(strip_controls(value).split())
    folded = value.casefold().replace("-", "").replace("\u2010", "")
    assert normalise_phrase(value) == " ".join(folded.split())
