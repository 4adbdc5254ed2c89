"""Data folders are found from a checkout and from a built wheel (package data)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from purple.resources import data_dir

ROOT = Path(__file__).resolve().parents[1]


def test_data_folders_found_in_checkout() -> None:
    for name in ("rules", "taxonomies", "benchmarks"):
        assert data_dir(name).is_dir()
    assert (data_dir("rules") / "regex").is_dir()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("purple-*.whl"))


def test_wheel_ships_data_folders_and_resolver_finds_them(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    assert any(n.startswith("purple/_data/rules/regex/") for n in names)
    assert any(n.startswith("purple/_data/taxonomies/") for n in names)
    assert any(n.startswith("purple/_data/benchmarks/") for n in names)
    code = "from purple.resources import data_dir; print(data_dir('rules'))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert Path(found.strip()) == tmp_path / "purple" / "_data" / "rules"
