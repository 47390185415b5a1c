"""The package's shape, as a new maintainer relies on it: front ends go through
`Aggregator` only, and no module grows past what one person reads at a sitting."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"
FRONT_ENDS = [
    PACKAGE / "cli.py",
    PACKAGE / "cli_tables.py",
    PACKAGE / "cli_people.py",
    PACKAGE / "worker.py",
    PACKAGE / "demo.py",
    *sorted((PACKAGE / "web").glob("*.py")),
]
MAX_LINES = 450


def _type_checking_blocks(tree: ast.AST) -> set[ast.AST]:
    """Nodes under `if TYPE_CHECKING:`: names of the rows Aggregator returns, for
    annotations only, are not a use of storage."""
    inside: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for child in node.body:
                inside |= set(ast.walk(child))
    return inside


def _storage_uses(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(), str(path))
    annotations_only = _type_checking_blocks(tree)
    for node in ast.walk(tree):
        if node in annotations_only:
            continue
        if isinstance(node, ast.ImportFrom) and "storage" in (node.module or "").split("."):
            found.append(f"line {node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}" for a in node.names if ".storage" in a.name
            ]
        elif isinstance(node, ast.Attribute) and node.attr == "storage":
            found.append(f"line {node.lineno}: .storage")
    return found


def test_front_ends_reach_storage_only_through_the_aggregator():
    assert len(FRONT_ENDS) >= 8
    uses = {p.name: _storage_uses(p) for p in FRONT_ENDS}
    assert {name: found for name, found in uses.items() if found} == {}


def test_the_web_package_init_is_an_app_factory():
    lines = (PACKAGE / "web" / "__init__.py").read_text().splitlines()
    assert len(lines) <= 70


def test_no_module_is_longer_than_one_sitting():
    lengths = {
        str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
