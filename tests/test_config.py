"""`event.toml` is read two ways: in plain Python when every value already has its type
and keeps its rules, else by pydantic (which explains problems and converts values).
The two must never disagree: whatever the plain reader takes, pydantic takes, to the
same settings; whatever pydantic refuses, the plain reader leaves to it."""

from __future__ import annotations

import copy
import datetime as dt
import subprocess
import sys
import tomllib
import types
from dataclasses import fields
from pathlib import Path
from types import NoneType
from typing import Any, Literal, get_args, get_origin

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aggregator.config import LeftToPydantic, Settings, read_plain, settings_from_dict
from aggregator.config_schema import validate
from aggregator.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = tomllib.loads((ROOT / "config" / "event.toml").read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-2, 70000),
    st.floats(),
    st.text(max_size=6),
    st.dates(),
    st.datetimes(),
    st.sampled_from(
        [
            "",
            "30",
            " 30",
            "2.5",
            "1e3",
            "true",
            "yes",
            "07:30",
            "7.30am",
            "24:00",
            "UTC",
            "Europe/London",
            "Mars/Olympus",
            "../etc",
            "http://x.example",
            "https://x.example/",
            "ftp://x.example/",
            "none",
            "tls",
            "starttls",
            "TLS",
            "2017-05-01",
            "2017-05-01T00:00:00",
            "\ud800",
            "a\udfffb",
            "Ünïcode",
        ]
    ),
    st.just(dt.datetime(2017, 5, 1)),
    st.just(float("inf")),
    st.just(1023),
    st.just(1024),
    st.just(65535),
    st.just(65536),
)
values = scalars | st.lists(scalars, max_size=3) | st.tuples(st.text(max_size=2))
values |= st.dictionaries(st.sampled_from(["name", "url", "x"]), scalars, max_size=2)


def typed(kind: Any) -> st.SearchStrategy[Any]:
    """Values of a field's own type, in and out of its rules."""
    if kind is str:
        return st.text(max_size=6) | scalars.filter(lambda v: isinstance(v, str))
    if kind is bool:
        return st.booleans()
    if kind is int:
        return st.integers(-2, 70000) | st.integers()
    if kind is float:
        return st.floats() | st.integers(-2, 100000)
    if kind is dt.date:
        return st.dates()
    if get_origin(kind) is list:
        return st.lists(typed(get_args(kind)[0]), max_size=3)
    if get_origin(kind) is Literal:
        return st.sampled_from([*get_args(kind), "TLS"])
    if isinstance(kind, types.UnionType):
        return st.one_of([st.none(), *(typed(k) for k in get_args(kind) if k is not NoneType)])
    raise AssertionError(kind)


FIELDS = {
    section.name: {
        f.name: f.type
        for f in fields(
            get_args(section.type)[0] if section.name == "contributors" else section.type
        )
    }
    for section in fields(Settings)
}


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from([*FIELDS, "elsewhere"]))
        action = draw(st.sampled_from(["typed"] * 6 + ["set", "set", "drop", "section", "unknown"]))
        if section not in data or action == "section":
            data[section] = draw(values | st.just({}) | st.just([{}]))
            continue
        target = data[section]
        if section == "contributors" and isinstance(target, list) and target:
            target = target[draw(st.integers(0, len(target) - 1))]
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from(sorted(FIELDS.get(section, {"x": None}))))
        if action == "drop":
            target.pop(key, None)
        elif action == "typed" and section in FIELDS:  # a value of the key's own type
            target[key] = draw(typed(FIELDS[section][key]))
        elif action == "unknown":
            target[draw(st.sampled_from(["colour", "Name", "1"]))] = draw(scalars)
        else:
            target[key] = draw(values)
    return data


def read_both(data: dict[str, Any]) -> tuple[Settings | None, Settings | str]:
    try:
        plain = read_plain(Settings, copy.deepcopy(data))
    except LeftToPydantic:
        plain = None
    try:
        checked: Settings | str = validate(copy.deepcopy(data))
    except ConfigError as e:
        checked = str(e)
    return plain, checked


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
@example(EXAMPLE)
@example({"event": {"name": "X"}, "polling": {"timeout_seconds": 5, "concurrency": True}})
@example({"event": {"name": "X", "site_url": "https://e.example"}, "digest": {"send_at": "7:3"}})
@example({"event": {"name": "X"}, "polling": {"per_host_per_second": float("nan")}})
@example({"event": {"name": "X"}, "polling": {"timeout_seconds": 10**400, "lease_seconds": 2**63}})
@example({"event": {"name": "X"}, "polling": {"max_backoff_hours": 2**53 + 1}})
def test_the_plain_reader_takes_only_what_pydantic_takes_as_it_is(data):
    plain, checked = read_both(data)
    if plain is not None:
        assert isinstance(checked, Settings), checked
        assert repr(plain) == repr(checked)  # the same values, of the same types: 20.0, not 20
    try:
        loaded: Settings | str = settings_from_dict(copy.deepcopy(data))
    except ConfigError as e:
        loaded = str(e)
    assert repr(loaded) == repr(checked)


def test_a_good_file_is_read_without_pydantic():
    """The point of the plain reader: the example file and one with many contributors."""
    many = copy.deepcopy(EXAMPLE)
    many["contributors"] = [
        {"name": f"C{n}", "url": f"https://b{n}.example/", "feed": f"https://b{n}.example/f"}
        for n in range(500)
    ]
    for data in (EXAMPLE, many):
        plain, checked = read_both(data)
        assert plain is not None and plain == checked
    script = (
        "import sys; from aggregator.config import load_settings; "
        "load_settings('config/event.toml'); assert 'pydantic' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)


def test_problems_are_still_explained_by_pydantic(tmp_path):
    path = tmp_path / "event.toml"
    path.write_text('[event]\nname = "X"\n[polling]\nconcurrency = 0\ntimeout_seconds = -1\n')
    try:
        settings_from_dict(tomllib.loads(path.read_text()), str(path))
    except ConfigError as e:
        message = str(e)
    assert message == (
        f"{path}: polling.concurrency: Input should be greater than or equal to 1"
        " (and 1 more problem(s))"
    )
