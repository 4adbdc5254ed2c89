"""Find the data folders (rules/, taxonomies/, benchmarks/) in a checkout or in an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

DataFolder = Literal["rules", "taxonomies", "benchmarks"]

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(name: DataFolder) -> Path:
    """Return the folder `name`: `purple/_data/<name>` in a wheel, `<repo>/<name>` in a checkout."""
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"Purple's data folder {name!r} is missing (looked in {installed} and {checkout}); reinstall the package"
    )
