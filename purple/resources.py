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


def shown_path(path: Path) -> str:
    """A path as records, manifests and results show it, with no machine's folders in it: inside the installed
    package relative to it (`purple/offline/model`), a shipped data set relative to the shipped data
    (`shipped:cyberseceval/...`), a path in the home folder from `~`, any other path as given."""
    resolved = path.resolve()
    for prefix, root in (("purple/", _PACKAGE_DIR), ("shipped:", data_dir("benchmarks")), ("~/", Path.home())):
        if resolved.is_relative_to(root.resolve()):
            return prefix + resolved.relative_to(root.resolve()).as_posix()
    return str(path)
