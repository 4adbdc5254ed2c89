"""The transformers backend on tiny random models: token ids, first-token probabilities, batching, generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from purple.llamaguard import LlamaGuard
from purple.models.base import GenerationParams
from purple.types import Message, assistant, user

CONVERSATIONS = [
    [user("How do I bake bread?")],
    [user("Tell me how to pick a lock."), assistant("Sure, first you...")],
    [user("What is the capital of France?")],
    [user("x " * 300)],
    [user("hi")],
]


def test_prompt_to_token_ids_keeps_special_tokens_whole(lg3_model: Any) -> None:
    guard = LlamaGuard(lg3_model)
    prompt = guard.render(CONVERSATIONS[0])
    tok = lg3_model.tokenizer
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    special = {t: tok.convert_tokens_to_ids(t) for t in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")}
    user_ids = tok("user", add_special_tokens=False)["input_ids"]
    agent_ids = tok("assistant", add_special_tokens=False)["input_ids"]
    assert ids[: 2 + len(user_ids) + 1] == [
        special["<|begin_of_text|>"], special["<|start_header_id|>"], *user_ids, special["<|end_header_id|>"]
    ]
    assert ids.count(special["<|begin_of_text|>"]) == 1
    assert ids[-(len(agent_ids) + 3) :] == [
        special["<|eot_id|>"], special["<|start_header_id|>"], *agent_ids, special["<|end_header_id|>"]
    ]
    assert tok.decode(ids) == prompt


def test_first_token_probabilities_and_batch_equals_single(lg3_model: Any) -> None:
    guard = LlamaGuard(lg3_model)
    prompts = [guard.render(c) + "\n\n" for c in CONVERSATIONS]
    batch = lg3_model.first_token_probs(prompts, ("safe", "unsafe"))
    for result in batch:
        assert result.error is None
        assert 0.0 <= result.probs["safe"] <= 1.0 and 0.0 <= result.probs["unsafe"] <= 1.0
        assert result.probs["safe"] + result.probs["unsafe"] <= 1.0 + 1e-6
    assert len({round(r.probs["unsafe"], 6) for r in batch}) > 1  # the model reads its input
    singles = [lg3_model.first_token_probs([p], ("safe", "unsafe"))[0] for p in prompts]
    for one, many in zip(singles, batch):
        assert one.probs["unsafe"] == pytest.approx(many.probs["unsafe"], abs=1e-5)


def test_shared_prefix_cache_changes_nothing(lg3_model: Any) -> None:
    import torch

    guard = LlamaGuard(lg3_model)
    rows = [lg3_model.tokenizer(guard.render(c) + "\n\n", add_special_tokens=False)["input_ids"] for c in CONVERSATIONS[2:]]
    with torch.inference_mode():
        lg3_model.prefix_cache = False
        plain = lg3_model._last_logits(rows)
        lg3_model.prefix_cache = True
        lg3_model._prefixes.clear()
        cached = lg3_model._last_logits(rows)
    assert len(lg3_model._prefixes) == 1
    assert torch.allclose(plain, cached, atol=1e-4)


def test_too_long_prompt_is_an_error_on_that_item_only(lg3_model: Any) -> None:
    limit = lg3_model.max_input_tokens
    lg3_model.max_input_tokens = 400
    try:
        results = lg3_model.first_token_probs(["hello", "word " * 500], ("safe", "unsafe"))
    finally:
        lg3_model.max_input_tokens = limit
    assert results[0].error is None and "limit is 400" in (results[1].error or "")


def test_batched_generation_with_chat_template_and_logprobs(lg3_model: Any) -> None:
    params = GenerationParams(max_tokens=4, top_logprobs=3)
    many = lg3_model.generate(CONVERSATIONS[:3], params)
    one = lg3_model.generate(CONVERSATIONS[1:2], params)[0]
    assert many[1].text == one.text  # left padding changes nothing
    for completion in many:
        assert completion.error is None and completion.usage["prompt_tokens"] > 100
        assert completion.logprobs and all(len(step) <= 3 and all(v <= 0 for v in step.values()) for step in completion.logprobs)


def test_vision_model_scores_an_image(vision_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    from purple.models.hf import HFModel

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    Image.new("RGB", (30, 50), (10, 10, 200)).save(tmp_path / "blue.png")
    guard = LlamaGuard(HFModel(str(vision_dir), batch_size=4))
    assert guard.format.version == "3-11b-vision"
    conversations = [
        [Message("user", "What is in this picture?", images=(str(tmp_path / "red.png"),))],
        [Message("user", "And this one?", images=(str(tmp_path / "blue.png"),))],
        [user("no picture here")],
        [Message("user", "two", images=(str(tmp_path / "red.png"), str(tmp_path / "blue.png")))],
        [Message("user", "missing", images=(str(tmp_path / "nope.png"),))],
    ]
    verdicts = guard.check_many(conversations)
    assert all(v.error is None and 0 <= v.score <= 1 for v in verdicts[:3])
    assert verdicts[0].score != verdicts[1].score
    assert "at most 1 image" in (verdicts[3].error or "")
    assert "not found" in (verdicts[4].error or "")
    single = guard.check(conversations[1])
    assert single.score == pytest.approx(verdicts[1].score, abs=1e-5)


def test_llama4_guard_text_scoring(lg4_dir: Path) -> None:
    from purple.models.hf import HFModel

    guard = LlamaGuard(HFModel(str(lg4_dir), batch_size=2))
    assert guard.format.version == "4"
    ids = guard.model.tokenizer(guard.render(CONVERSATIONS[1]), add_special_tokens=False)["input_ids"]
    tok = guard.model.tokenizer
    assert ids[:2] == [tok.convert_tokens_to_ids("<|begin_of_text|>"), tok.convert_tokens_to_ids("<|header_start|>")]
    verdicts = guard.check_many(CONVERSATIONS[:3])
    assert all(v.error is None and 0 <= v.score <= 1 for v in verdicts)
    assert guard.check(CONVERSATIONS[2]).score == pytest.approx(verdicts[2].score, abs=1e-5)
