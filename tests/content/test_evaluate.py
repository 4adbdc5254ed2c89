"""Held-out evaluation of a content model: the figures, the model-card tables and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from purple.content import ContentClassifier  # noqa: E402
from purple.content.data import OVER_REFUSAL_GROUPS, is_weak_label, load_corpus, split  # noqa: E402
from purple.content.evaluate import CARD_END, CARD_START, evaluate, main, markdown, write_card  # noqa: E402
from tests.content.synthetic import build_datasets  # noqa: E402


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_datasets(tmp_path_factory.mktemp("datasets"))


def test_figures_of_a_model_that_flags_everything(fixed_dir: Path, datasets: Path) -> None:
    test = split(load_corpus(datasets)).test
    result = evaluate(ContentClassifier(fixed_dir), test, progress=False)
    main_part = [e for e in test if not is_weak_label(e)]
    unsafe = sum(e.unsafe for e in main_part)
    assert result["all"]["safe"] == len(main_part) - unsafe and result["all"]["unsafe"] == unsafe
    assert result["all"]["recall"] == 1.0 and result["all"]["fpr"] == 1.0
    assert result["all"]["auprc"] == pytest.approx(round(unsafe / len(main_part), 4))  # every score tied
    assert result["all"]["roc_auc"] == 0.5
    sensitive = [e for e in test if e.group in OVER_REFUSAL_GROUPS]
    assert result["over_refusal"]["examples"] == len(sensitive) > 0 and result["over_refusal"]["flagged"] == 1.0
    assert result["categories"]["S1"]["recall"] == 1.0 and result["categories"]["S1"]["labelled"] == 1.0
    assert result["categories"]["S10"]["labelled"] == 0.0  # flagged, but S1 and S9 are the labels
    coded = [e for e in main_part if e.unsafe and e.categories]
    assert result["codes_per_flagged"] == 2.0 and result["categories"]["S1"]["given"] == len(coded)
    assert result["categories"]["S1"]["agreement"] == round(sum("S1" in e.categories for e in coded) / len(coded), 4)
    assert result["categories"]["S10"]["given"] == 0 and result["categories"]["S10"]["agreement"] is None
    assert result["responses"]["unsafe"] == 1 and result["responses"]["safe"] == 1
    assert result["groups"]["strongreject"]["recall"] == 1.0
    assert result["groups"]["safe_sensitive_prompts/spikee"]["flagged_safe"] == 1.0


def test_card_tables_are_written_between_markers(fixed_dir: Path, datasets: Path, tmp_path: Path) -> None:
    result = evaluate(ContentClassifier(fixed_dir), split(load_corpus(datasets)).test, progress=False)
    text = markdown(result)
    assert "| all held-out sources |" in text and "Over-refusal: **1.000**" in text and "| S1 |" in text
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# Model\n\nInjection figures stay.\n")
    write_card(card, "first")
    write_card(card, text)
    body = card.read_text()
    assert body.startswith("# Model\n\nInjection figures stay.") and body.count(CARD_START) == 1
    assert "first" not in body and text in body and body.index(CARD_START) < body.index(text) < body.index(CARD_END)


def test_command_line(fixed_dir: Path, datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    main(["--data", str(datasets), "--model", str(fixed_dir), "--json", str(out)])
    assert "| all held-out sources |" in capsys.readouterr().out
    assert json.loads(out.read_text())["model"] == str(fixed_dir)
    with pytest.raises(SystemExit, match="^error: .*does not look like shared/datasets"):
        main(["--data", str(tmp_path), "--model", str(fixed_dir)])
    with pytest.raises(SystemExit, match="^error: .*no purple.json"):
        main(["--data", str(datasets), "--model", str(tmp_path)])
