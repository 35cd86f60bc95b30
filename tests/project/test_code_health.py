"""Habits the code keeps: no function in the package over 80 lines (split long work into
plain, named steps, as torchvision's references do); the package cites docs pages, not the
repository's bench/ or tools/ files (which a wheel does not have); the wheel ships weights and
cards, not logs; bench/README.md indexes everything under bench/."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rtseg"
MAX_LINES = 80


def test_no_function_over_80_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these into named steps:\n" + "\n".join(long)


def test_the_package_cites_no_bench_or_tools_path():
    # An installed rtseg has neither folder: a docstring says the measured reason itself (figures,
    # CPU) or names a docs page.
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for path in sorted(PACKAGE.rglob("*.py"))
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if "bench/" in line or "tools/" in line]
    assert not hits, "say the finding or cite docs/*.md instead:\n" + "\n".join(hits)


def _package_data() -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["package-data"]["rtseg"]


def test_the_wheel_ships_no_logs():
    patterns = _package_data()
    assert not [p for p in patterns if "jsonl" in p or "log" in p], patterns
    # nor a wider pattern that would take the logs of the package's folders along
    logs = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and (p.suffix in (".jsonl", ".log") or "_log" in p.name)]
    for name in logs + ["shipped/enet_camvid_log.jsonl", "shipped/train.log"]:
        matched = [p for p in patterns if PurePosixPath(name).match(p)]
        assert not matched, f"package-data {matched} would put {name} in the wheel"


def _tracked(folder: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files of bench/ are unknown")
    return out.stdout.splitlines()


def test_bench_readme_indexes_every_entry_of_bench():
    text = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    entries = {PurePosixPath(f).parts[1] + ("/" if len(PurePosixPath(f).parts) > 2 else "")
               for f in _tracked("bench")} - {"README.md"}
    assert entries, "git ls-files bench listed nothing"
    missing = sorted(e for e in entries if f"`{e}" + ("" if e.endswith("/") else "`") not in text)
    assert not missing, "bench/README.md does not name (with what it is and its command): " + ", ".join(missing)
