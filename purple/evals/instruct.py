"""instruct: the model writes code from a description; Code Shield judges it, BLEU compares it with the original."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from purple.evals.benchmark import Judged, JudgeContext, Sample, read_json_list, text_of
from purple.evals.code_judge import JUDGE_BATCH, judge_code
from purple.types import Message

FIELDS = ("test_case_prompt", "origin_code", "language", "cwe_identifier")


class Instruct:
    name = "instruct"
    dataset = "instruct/instruct.json"
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
        references = [text_of(s.data["origin_code"]) for s in samples]
        return await asyncio.to_thread(judge_code, samples, responses, references, ctx)
