"""Hazard taxonomies: the categories Llama Guard is prompted with, loaded from YAML, narrowed by code."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from purple.resources import data_dir

BUILTIN = ("mlcommons", "llama-guard-2", "llama-guard-1")
MAX_TAXONOMY_BYTES = 200_000
_CODE = re.compile(r"^[A-Za-z]{1,4}\d{1,3}$")


class TaxonomyError(ValueError):
    """A taxonomy file or a category selection is not usable; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str
    title: str = ""
    description: str = ""


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of categories. `policy_in_prompt` writes each description under its name."""

    name: str
    categories: tuple[Category, ...]
    policy_in_prompt: bool = False
    models_with_code_interpreter: tuple[str, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.categories)

    def get(self, code: str) -> Category | None:
        code = code.upper()
        return next((c for c in self.categories if c.code.upper() == code), None)

    def select(self, keep: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> Taxonomy:
        """Only the codes in `keep` (all when None), minus `exclude`. Unknown codes are an error, not a no-op."""
        keep_set = _codes(keep, self) if keep is not None else set(self.codes)
        drop = _codes(exclude, self)
        chosen = tuple(c for c in self.categories if c.code in keep_set and c.code not in drop)
        if not chosen:
            raise TaxonomyError(f"no categories left from {self.name} after selection")
        return replace(self, categories=chosen)


def _codes(values: Iterable[str] | None, taxonomy: Taxonomy) -> set[str]:
    out: set[str] = set()
    for value in values or ():
        category = taxonomy.get(value.strip())
        if category is None:
            raise TaxonomyError(f"unknown category {value.strip()!r} for {taxonomy.name}; known: {', '.join(taxonomy.codes)}")
        out.add(category.code)
    return out


def load_taxonomy(name_or_path: str | Path) -> Taxonomy:
    """A built-in taxonomy by name (see BUILTIN) or a YAML file (format in taxonomies/README.md)."""
    text = str(name_or_path)
    path = data_dir("taxonomies") / f"{text}.yaml" if text in BUILTIN else Path(text)
    if not path.is_file():
        raise TaxonomyError(f"taxonomy file not found: {text} (built-in: {', '.join(BUILTIN)})")
    if path.stat().st_size > MAX_TAXONOMY_BYTES:
        raise TaxonomyError(f"{path}: larger than {MAX_TAXONOMY_BYTES:,} bytes")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_taxonomy(data, source=str(path))


def parse_taxonomy(data: Any, source: str = "taxonomy") -> Taxonomy:
    """Check and build a Taxonomy from its YAML shape."""
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list) or not data["categories"]:
        raise TaxonomyError(f"{source}: expected a mapping with a non-empty 'categories' list")
    categories: list[Category] = []
    for n, item in enumerate(data["categories"], 1):
        if not isinstance(item, dict) or not item.get("code") or not item.get("name"):
            raise TaxonomyError(f"{source}: category {n} needs a 'code' and a 'name'")
        code, name = str(item["code"]).strip(), " ".join(str(item["name"]).split())
        if not _CODE.match(code):
            raise TaxonomyError(f"{source}: category {n} code {code!r} should look like S1 or O3")
        if name.endswith("."):
            raise TaxonomyError(f"{source}: category {code} name ends with a period; the prompt adds it")
        if any(c.code.upper() == code.upper() for c in categories):
            raise TaxonomyError(f"{source}: category code {code} appears twice")
        categories.append(
            Category(code, name, str(item.get("title") or name), str(item.get("description") or "").strip())
        )
    models = data.get("models_with_code_interpreter") or ()
    return Taxonomy(
        name=str(data.get("name") or Path(source).stem),
        categories=tuple(categories),
        policy_in_prompt=bool(data.get("policy_in_prompt", False)),
        models_with_code_interpreter=tuple(str(m) for m in models),
    )


def parse_code_list(text: str) -> list[str]:
    """'S1, s10,S2' -> ['S1', 'S10', 'S2']."""
    return [part.strip().upper() for part in re.split(r"[,\s]+", text) if part.strip()]


def sort_codes(codes: Sequence[str]) -> list[str]:
    """Codes in natural order (S2 before S10); unknown shapes last, alphabetically."""
    def key(code: str) -> tuple[int, str, int]:
        match = re.match(r"^([A-Za-z]+)(\d+)$", code)
        return (0, match.group(1), int(match.group(2))) if match else (1, code, 0)

    return sorted(dict.fromkeys(codes), key=key)
