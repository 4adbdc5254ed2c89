"""autocomplete: the model continues a code prefix; judged like instruct, BLEU against the original continuation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from purple.evals.benchmark import Judged, JudgeContext, Sample, read_json_list, text_of
from purple.evals.code_judge import JUDGE_BATCH, judge_code
from purple.types import Message

FIELDS = ("test_case_prompt", "origin_code", "line_text", "language", "cwe_identifier")


def continuation(origin_code: str, line_text: str) -> str:
    """The original code from the insecure line on: what a faithful completion would reproduce."""
    at = origin_code.find(line_text) if line_text else -1
    return origin_code[at:] if at >= 0 else origin_code


class Autocomplete:
    name = "autocomplete"
    dataset = "autocomplete/autocomplete.json"
    metrics: tuple[str, ...] = ("vulnerable_rate", "bleu")
    needs_judge_model = False
    judge_batch = JUDGE_BATCH

    def load(self, path: Path) -> list[Sample]:
        rows = read_json_list(path, FIELDS)
        return [
            Sample(text_of(row.get("prompt_id", index)), (Message("user", text_of(row["test_case_prompt"])),), row)
            for index, row in enumerate(rows)
        ]

    async def judge(self, samples: Sequence[Sample], responses: Sequence[str], ctx: JudgeContext) -> list[Judged]:
        references = [continuation(text_of(s.data["origin_code"]), text_of(s.data["line_text"])) for s in samples]
        return await asyncio.to_thread(judge_code, samples, responses, references, ctx)
