"""Answer parsing (safe / unsafe + codes, unknown and excluded codes) and taxonomy files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from purple.llamaguard.parser import answer_probs, parse_answer
from purple.llamaguard.taxonomy import BUILTIN, TaxonomyError, load_taxonomy, parse_code_list
from purple.resources import data_dir

KNOWN = [f"S{n}" for n in range(1, 15)]


@pytest.mark.parametrize("text", ["safe", "\n\nsafe", "  Safe  \n", "safe<|eot_id|>".replace("<|eot_id|>", "")])
def test_safe_answers(text: str) -> None:
    answer = parse_answer(text, KNOWN)
    assert answer.unsafe is False and answer.codes == ()


def test_unsafe_with_codes_in_natural_order_and_tolerant_spacing() -> None:
    answer = parse_answer("\n\nunsafe\n s10 , S1,S2 \n", KNOWN)
    assert answer.unsafe is True and answer.codes == ("S1", "S2", "S10")
    assert parse_answer("unsafe S3", KNOWN).codes == ("S3",)


def test_unknown_codes_are_reported_not_dropped() -> None:
    answer = parse_answer("unsafe\nS1,S15,X9", KNOWN)
    assert answer.codes == ("S1",) and answer.unknown_codes == ("S15", "X9")
    noisy = parse_answer("unsafe\nS2 \x00garbage", KNOWN)
    assert noisy.codes == ("S2",) and "garbage" in noisy.unreadable and "\x00" not in noisy.unreadable


def test_excluded_codes_are_honoured() -> None:
    only_excluded = parse_answer("unsafe\nS6", KNOWN, excluded=["s6"])
    assert only_excluded.unsafe is False and only_excluded.excluded_codes == ("S6",)
    mixed = parse_answer("unsafe\nS6,S1", KNOWN, excluded=["S6"])
    assert mixed.unsafe is True and mixed.codes == ("S1",) and mixed.excluded_codes == ("S6",)


@pytest.mark.parametrize("text", ["", "maybe", "I cannot answer that"])
def test_unreadable_answers(text: str) -> None:
    assert parse_answer(text, KNOWN).parsed is False


def test_answer_probs_from_server_tokens() -> None:
    top = {"safe": math.log(0.7), " unsafe": math.log(0.2), "un": math.log(0.05), "\n": math.log(0.05)}
    safe, unsafe = answer_probs(top)  # type: ignore[misc]
    assert safe == pytest.approx(0.7) and unsafe == pytest.approx(0.25)
    assert answer_probs({"hello": -0.1}) is None


def test_builtin_taxonomies() -> None:
    mlcommons = load_taxonomy("mlcommons")
    assert mlcommons.codes == tuple(f"S{n}" for n in range(1, 15))
    assert mlcommons.get("s3").name == "Sex Crimes" and mlcommons.get("S3").title == "Sex-Related Crimes"  # type: ignore[union-attr]
    assert load_taxonomy("llama-guard-2").codes[-1] == "S11"
    lg1 = load_taxonomy("llama-guard-1")
    assert lg1.policy_in_prompt and lg1.codes == ("O1", "O2", "O3", "O4", "O5", "O6")
    assert all(c.description.startswith("Should not") for c in lg1.categories)
    assert set(BUILTIN) <= {p.stem for p in data_dir("taxonomies").glob("*.yaml")}


def test_custom_taxonomy_file_and_selection(tmp_path: Path) -> None:
    example = load_taxonomy(data_dir("taxonomies") / "custom-example.yaml")
    assert example.policy_in_prompt and example.get("S2").name == "Financial Advice"  # type: ignore[union-attr]
    assert example.select(keep=["S1", "S3"], exclude=["S3"]).codes == ("S1",)
    with pytest.raises(TaxonomyError, match="unknown category 'S9'"):
        example.select(exclude=["S9"])
    with pytest.raises(TaxonomyError, match="no categories left"):
        example.select(keep=["S1"], exclude=["S1"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("categories: []", "non-empty 'categories'"),
        ("categories: [{code: S1}]", "needs a 'code' and a 'name'"),
        ("categories: [{code: S1, name: A.}]", "ends with a period"),
        ("categories: [{code: S1, name: A}, {code: s1, name: B}]", "appears twice"),
        ("categories: [{code: 'rm -rf', name: A}]", "should look like S1"),
        ("categories: [unclosed", "not valid YAML"),
    ],
)
def test_bad_taxonomy_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TaxonomyError, match=message):
        load_taxonomy(path)
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "missing.yaml")


def test_code_lists() -> None:
    assert parse_code_list("s1, S10 ,S2") == ["S1", "S10", "S2"]
