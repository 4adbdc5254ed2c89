"""Llama Guard 1-4: prompt formats, taxonomies, answer parsing and first-token scoring behind the Detector API."""

from purple.llamaguard.classifier import LlamaGuard, load_guard
from purple.llamaguard.formats import FORMATS, GuardFormat, detect_version, get_format, render, to_turns
from purple.llamaguard.parser import GuardAnswer, parse_answer
from purple.llamaguard.taxonomy import Category, Taxonomy, TaxonomyError, load_taxonomy

__all__ = [
    "FORMATS",
    "Category",
    "GuardAnswer",
    "GuardFormat",
    "LlamaGuard",
    "Taxonomy",
    "TaxonomyError",
    "detect_version",
    "get_format",
    "load_guard",
    "load_taxonomy",
    "parse_answer",
    "render",
    "to_turns",
]
