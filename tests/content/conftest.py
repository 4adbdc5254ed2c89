from __future__ import annotations

import math
from pathlib import Path

import pytest

FIXED_SCORES = {"unsafe": 0.9, "S1": 0.8, "S9": 0.6, "S2": 0.3}
"""What the fixed content model answers for every text (every other hazard: 0.01)."""


def build_fixed_content_model(folder: Path, scores: dict[str, float], threshold: float = 0.5) -> Path:
    """An offline model folder whose content head gives the same scores for every text (zero weights, set biases)."""
    import torch

    from purple.content.data import CATEGORIES
    from purple.offline.build import save_model, truncated_encoder
    from tests.offline.tiny import build_tiny_bert

    base = build_tiny_bert(folder.parent / f"{folder.name}-base", seed=5)
    encoder, config = truncated_encoder(base, 2)
    outputs = ["unsafe", *CATEGORIES]
    bias = torch.tensor([math.log(p / (1 - p)) for p in (scores.get(o, 0.01) for o in outputs)])
    head = {"weight": torch.zeros(len(outputs), config["hidden_size"]), "bias": bias, "outputs": outputs,
            "threshold": threshold, "category_threshold": 0.5}
    return save_model(folder, encoder, config, base / "tokenizer.json", {"content": head}, {"name": "fixed"})


@pytest.fixture(scope="session")
def content_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random offline model folder with injection and content heads."""
    pytest.importorskip("torch")
    from tests.offline.tiny import build_offline_model

    return build_offline_model(tmp_path_factory.mktemp("content") / "model", seed=3)


@pytest.fixture(scope="session")
def fixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny offline model whose content head answers FIXED_SCORES for any text."""
    pytest.importorskip("torch")
    return build_fixed_content_model(tmp_path_factory.mktemp("fixed") / "model", FIXED_SCORES)
