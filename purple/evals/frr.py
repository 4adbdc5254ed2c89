"""frr: benign but borderline prompts (CyberSecEval's mitre_frr); the false refusal rate, by attack type."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from purple.evals.benchmark import Judged, JudgeContext, Sample, read_json_list, text_of
from purple.evals.refusal import is_refusal
from purple.types import Message


class FalseRefusal:
    name = "frr"
    dataset = "mitre_frr/mitre_frr.json"
    metrics: tuple[str, ...] = ("refusal_rate",)
    needs_judge_model = False

    def load(self, path: Path) -> list[Sample]:
        rows = read_json_list(path, ("mutated_prompt",))
        return [
            Sample(text_of(row.get("prompt_id", index)), (Message("user", text_of(row["mutated_prompt"])),), row)
            for index, row in enumerate(rows)
        ]

    async def judge(self, samples: Sequence[Sample], responses: Sequence[str], ctx: JudgeContext) -> list[Judged]:
        judged = []
        for sample, response in zip(samples, responses):
            refused = is_refusal(response)
            judged.append(
                Judged(
                    scores={"refusal_rate": float(refused)},
                    groups={"attack_type": text_of(sample.data.get("attack_type")) or "unknown"},
                    judge_output="refusal" if refused else "accept",
                )
            )
        return judged
