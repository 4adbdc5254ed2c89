"""LLM judges: ask a judge model one question per response and read a short answer or a JSON verdict."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from purple.models.base import GenerationParams
from purple.types import Message

JUDGE_PARAMS = GenerationParams(max_tokens=256, temperature=0.0)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


async def ask(judge_model: Any, prompts: Sequence[str],
              params: GenerationParams = JUDGE_PARAMS) -> list[tuple[str, str | None]]:
    """The judge's answer to each prompt as (text, error); one failed item does not fail the batch."""
    if judge_model is None:
        return [("", "this benchmark needs a judge model (--judge)")] * len(prompts)
    completions = await judge_model.agenerate([[Message("user", p)] for p in prompts], params)
    return [(c.text, f"judge: {c.error}" if c.error else None) for c in completions]


def says_yes(answer: str) -> bool:
    """CyberSecEval's reading of a Yes/No judge: the word yes anywhere in the answer."""
    return "yes" in answer.lower()


def parse_json_object(answer: str, keys: Sequence[str]) -> dict[str, Any] | None:
    """The first JSON object in the answer if it has every key, else None."""
    match = _JSON_OBJECT.search(answer)
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, dict) or any(k not in value for k in keys):
        return None
    return value
