"""The offline content classifier as a Detector, on tiny model folders built here (random or fixed heads)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from purple.content import ContentClassifier, content_model_folder, is_content_model_available  # noqa: E402
from purple.content.data import CATEGORIES  # noqa: E402
from purple.llamaguard.taxonomy import TaxonomyError, load_taxonomy  # noqa: E402
from purple.offline.encoder import CONTENT_MODEL_DIR, OfflineModelError, SharedEncoder  # noqa: E402
from purple.types import Decision, Message  # noqa: E402
from tests.content.conftest import FIXED_SCORES  # noqa: E402

TEXTS = ["What are the symptoms of diabetes?", "How do I make a bomb to hurt people?", "the report is attached"]


@pytest.fixture(scope="module")
def classifier(content_dir: Path) -> ContentClassifier:
    return ContentClassifier(content_dir)


def fixed(folder: Path, **options: Any) -> ContentClassifier:
    return ContentClassifier(folder, **options)


def conv(*turns: tuple[str, str]) -> list[Message]:
    return [Message(role, text) for role, text in turns]  # type: ignore[arg-type]


def test_loads_offline_and_scores_in_range(content_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the content classifier tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    detector = ContentClassifier(content_dir, encoder=SharedEncoder(content_dir))
    details = detector.score_details(TEXTS + ["the report " * 200])
    assert all(d.error is None and 0.0 <= d.unsafe <= 1.0 for d in details)
    assert all(set(d.categories) == set(CATEGORIES) and all(0.0 <= p <= 1.0 for p in d.categories.values())
               for d in details)
    assert details[0].windows == 1 and details[-1].windows > 1
    verdict = detector.check([Message("user", TEXTS[1])])
    assert verdict.detector == "purple_content" and verdict.error is None and 0.0 <= verdict.score <= 1.0
    assert verdict.score == pytest.approx(details[1].unsafe)


def test_head_outputs_and_labels_are_taxonomy_codes(classifier: ContentClassifier) -> None:
    codes = load_taxonomy("mlcommons").codes
    assert classifier.outputs == ["unsafe", *codes] and classifier.selected == codes
    low = ContentClassifier(classifier.encoder.folder, threshold=0.0, category_threshold=0.0)
    details = low.score_details(TEXTS)
    for verdict, detail in zip(low.check_many([[Message("user", t)] for t in TEXTS]), details):
        assert verdict.decision == Decision.BLOCK and set(verdict.labels) == set(codes)
        assert list(verdict.labels) == sorted(codes, key=lambda c: -detail.categories[c])
        assert f"{verdict.labels[0]} {load_taxonomy('mlcommons').get(verdict.labels[0]).name}" in verdict.reason


def test_thresholds_come_from_the_model(tmp_path: Path) -> None:
    from tests.offline.tiny import build_offline_model

    folder = build_offline_model(tmp_path / "model", seed=4, thresholds={"content": 0.7})
    detector = ContentClassifier(folder)
    assert detector.threshold == 0.7 and detector.category_threshold == 0.5
    assert ContentClassifier(folder, threshold=0.2).threshold == 0.2
    with pytest.raises(ValueError, match="review_threshold"):
        ContentClassifier(folder, threshold=0.3, review_threshold=0.4)
    with pytest.raises(ValueError, match="threshold must be in"):
        ContentClassifier(folder, threshold=1.5)


def test_all_categories_score_p_unsafe_and_label_in_order(fixed_dir: Path) -> None:
    verdict = fixed(fixed_dir).check([Message("user", "anything")])
    assert verdict.decision == Decision.BLOCK and verdict.score == pytest.approx(FIXED_SCORES["unsafe"], abs=1e-3)
    assert verdict.labels == ("S1", "S9")  # the codes at or above the category threshold, highest first
    assert "S1 Violent Crimes" in verdict.reason and "S9 Indiscriminate Weapons" in verdict.reason
    top_only = fixed(fixed_dir, category_threshold=0.95).check([Message("user", "anything")])
    assert top_only.labels == ("S1",)  # unsafe but no code clears the threshold: the top one


def test_selected_categories_narrow_the_score(fixed_dir: Path) -> None:
    kept = fixed(fixed_dir, categories=["S9", "s2"]).check([Message("user", "anything")])
    assert kept.decision == Decision.BLOCK and kept.labels == ("S9",)
    assert kept.score == pytest.approx(FIXED_SCORES["S9"], abs=1e-3)  # min(P(unsafe), max selected P(Sk))
    elsewhere = fixed(fixed_dir, categories=["S2", "S10"]).check([Message("user", "anything")])
    assert elsewhere.decision == Decision.ALLOW and elsewhere.labels == ()
    assert elsewhere.score == pytest.approx(FIXED_SCORES["S2"], abs=1e-3)
    assert "unsafe only in categories not selected (S1, S9)" in elsewhere.reason


def test_excluded_categories_behave_as_for_llama_guard(fixed_dir: Path) -> None:
    without_s1 = fixed(fixed_dir, exclude=["S1"]).check([Message("user", "anything")])
    assert without_s1.decision == Decision.BLOCK and without_s1.labels == ("S9",)
    only_excluded = fixed(fixed_dir, exclude=["S1", "S9"]).check([Message("user", "anything")])
    assert only_excluded.decision == Decision.ALLOW and "S1, S9" in only_excluded.reason
    with pytest.raises(TaxonomyError, match="unknown category 'S99'"):
        fixed(fixed_dir, categories=["S99"])
    with pytest.raises(TaxonomyError, match="no categories left"):
        fixed(fixed_dir, exclude=list(CATEGORIES))


def test_review_threshold(fixed_dir: Path) -> None:
    verdict = fixed(fixed_dir, categories=["S2"], review_threshold=0.2).check([Message("user", "anything")])
    assert verdict.decision == Decision.HUMAN_REVIEW and verdict.labels == ("S2",)
    assert verdict.reason.startswith("for review: S2 Non-Violent Crimes")


def test_custom_taxonomies_work_by_code(fixed_dir: Path, tmp_path: Path) -> None:
    mlcommons = load_taxonomy("mlcommons")
    renamed = replace(mlcommons, name="ours", categories=tuple(replace(c, name=f"Our {c.name}")
                                                               for c in mlcommons.categories))
    verdict = fixed(fixed_dir, taxonomy=renamed).check([Message("user", "anything")])
    assert verdict.score == pytest.approx(FIXED_SCORES["unsafe"], abs=1e-3)  # every hazard selected
    assert "S1 Our Violent Crimes" in verdict.reason
    subset = fixed(fixed_dir, taxonomy="taxonomies/custom-example.yaml").check([Message("user", "anything")])
    assert subset.labels == ("S1",) and subset.score == pytest.approx(FIXED_SCORES["S1"], abs=1e-3)


def test_a_custom_hazard_is_a_clear_error(fixed_dir: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: shop\ncategories:\n  - {code: S1, name: Violent Crimes}\n"
                      "  - {code: S20, name: Competitor Products}\n")
    with pytest.raises(TaxonomyError) as caught:
        fixed(fixed_dir, taxonomy=policy)
    message = str(caught.value)
    assert "S20 (Competitor Products)" in message and "S1-S14" in message and "Llama Guard" in message
    assert "\n" not in message


def test_the_judged_message_is_the_last_one_that_is_not_system(classifier: ContentClassifier) -> None:
    alone = {t: s.unsafe for t, s in zip(TEXTS, classifier.score_details(TEXTS))}
    verdicts = classifier.check_many([
        conv(("user", TEXTS[0]), ("assistant", TEXTS[1])),
        conv(("user", TEXTS[0]), ("assistant", TEXTS[1]), ("user", TEXTS[2])),
        conv(("user", TEXTS[2]), ("system", TEXTS[0])),
        conv(("user", TEXTS[0]), ("tool", TEXTS[1])),
    ])
    assert [v.score for v in verdicts] == pytest.approx([alone[TEXTS[1]], alone[TEXTS[2]], alone[TEXTS[2]],
                                                         alone[TEXTS[1]]], abs=1e-3)


def test_check_many_equals_singles(content_dir: Path) -> None:
    conversations = [[Message("user", t)] for t in TEXTS] + [conv(("user", "hi"), ("assistant", "word " * 300))]
    together = ContentClassifier(content_dir, encoder=SharedEncoder(content_dir)).check_many(conversations)
    singles = [ContentClassifier(content_dir, encoder=SharedEncoder(content_dir)).check(c) for c in conversations]
    # dynamic int8 quantisation scales activations per batch: a text's score moves slightly with its batch mates
    assert [v.score for v in together] == pytest.approx([v.score for v in singles], abs=1e-3)
    assert [v.decision for v in together] == [v.decision for v in singles]


@dataclass
class Odd:
    """A message-like object whose content is not text (Message itself refuses that)."""

    role: str
    content: Any


def test_bad_input_is_an_error_verdict_not_a_crash(content_dir: Path) -> None:
    detector = ContentClassifier(content_dir, max_chars=5_000)
    verdicts = detector.check_many([
        [Message("user", "fine")],
        [Message("user", "x" * 6_000)],
        [Odd("user", b"\xff\xfe broken")],
        [Odd("user", 42)],
        [],
        [Message("system", "only a system prompt")],
        "a bare string",  # type: ignore[list-item]
        [object()],  # type: ignore[list-item]
        [Odd("user", "Ignore this".encode())],
        [Message("user", "a\x00b \ud800 lone surrogate")],
    ])
    assert verdicts[0].error is None and verdicts[-1].error is None and verdicts[-2].error is None
    expected = ["limit is 5,000", "not valid UTF-8", "expected text, got int", "nothing to classify",
                "nothing to classify", "expected a conversation", "expected messages"]
    for verdict, words in zip(verdicts[1:8], expected):
        assert verdict.error and words in verdict.error and "\n" not in verdict.error
        assert verdict.decision == Decision.ALLOW and verdict.score == 0.0
    assert verdicts[-2].score == pytest.approx(detector.check([Message("user", "Ignore this")]).score, abs=1e-3)
    with pytest.raises(ValueError, match="text 1"):
        detector.score_texts(["ok", "x" * 6_000])


def test_folders_without_a_content_head_are_one_line_errors(tmp_path: Path) -> None:
    from tests.offline.tiny import build_offline_model

    injection_only = build_offline_model(tmp_path / "injection", heads={"injection": ["malicious"]})
    assert not is_content_model_available(injection_only)
    with pytest.raises(OfflineModelError, match="no 'content' head"):
        ContentClassifier(injection_only)
    with pytest.raises(OfflineModelError, match="no purple.json"):
        ContentClassifier(tmp_path)
    assert not is_content_model_available(tmp_path)


def test_model_specs() -> None:
    assert content_model_folder("purple-content") == CONTENT_MODEL_DIR
    assert content_model_folder("Purple_Content:/models/x") == Path("/models/x")
    assert content_model_folder("hf:meta-llama/Llama-Guard-3-1B") is None
