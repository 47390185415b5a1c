"""What `status` and `poll` load before they start (README, "Start fast"): not pydantic,
neither for the config nor for typer's option checks, and the options read as typer reads
them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer._click import Context
from typer._coercion import build_runtime_param

from aggregator.cli import app
from aggregator.cli_coercion import TYPER_VERSION


def test_status_and_poll_start_without_pydantic(tmp_path):
    config = tmp_path / "event.toml"
    config.write_text(
        f'[event]\nname = "W"\n[database]\nurl = "sqlite:///{tmp_path / "a.db"}"\n'
        f'[publish]\noutput_dir = "{tmp_path / "out"}"\n'
    )
    run = [sys.executable, "-c", "from aggregator.cli import main; main()", "--config", config]
    subprocess.run([*run, "init"], check=True, capture_output=True)
    script = (
        "import sys\nfrom aggregator.cli import app\n"
        "app(sys.argv[1:], standalone_mode=False)\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
    )
    assert typer.__version__.startswith(TYPER_VERSION), (
        f"typer {typer.__version__}: check aggregator/cli_coercion.py against it"
    )
    for command in (["status"], ["poll"]):
        done = subprocess.run(
            [sys.executable, "-c", script, "--config", str(config), *command],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "given", [None, "", "event.toml", "a//b/", "-", "DIR", "FILE", "FILE/", "./FILE", "a\udcffb"]
)
@pytest.mark.parametrize("readable", [True, False])
def test_config_is_read_as_typer_reads_it(tmp_path, monkeypatch, given, readable):
    (tmp_path / "FILE").write_text("")
    (tmp_path / "DIR").mkdir()
    monkeypatch.chdir(tmp_path)
    if not readable:
        monkeypatch.setattr(os, "access", lambda *_a, **_k: False)
    group = typer.main.get_command(app)
    param = next(p for p in group.params if p.name == "config")
    ctx = Context(group)

    def outcome(coercion):
        try:
            return coercion.coerce(given, param=param, ctx=ctx)
        except Exception as e:
            return type(e), e.format_message()

    ours = outcome(param.get_runtime_param())
    typers = outcome(build_runtime_param(param.type_descriptor))
    assert ours == typers
    assert ours is None or isinstance(ours, Path) or "not readable" in ours[1]
