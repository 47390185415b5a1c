"""What `pip install` (not `-e`) gets: every template and sample file in the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("event_aggregator-*.whl")
    return path


def test_the_wheel_holds_every_template_and_sample(wheel: Path):
    package = ROOT / "aggregator"
    wanted = {
        str(p.relative_to(ROOT))
        for folder in ("templates", "demo_data")
        for p in (package / folder).rglob("*")
        if p.is_file()
    }
    assert any(name.startswith("aggregator/templates/web/") for name in wanted)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert wanted - names == set()
    assert "aggregator/__main__.py" in names
