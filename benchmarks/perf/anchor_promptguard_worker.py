"""Runs inside a separate virtualenv with the `llamafirewall` PyPI package (the anchor), never in Purple's.

llamafirewall 1.0.3 imports `HfFolder`, which huggingface_hub >= 1.0 removed, so that venv pins huggingface_hub < 1.0
and transformers < 5. The model is whatever folder sits at $HF_HOME/meta-llama--Llama-Prompt-Guard-2-86M (where
LlamaFirewall looks before it would download); the benchmark puts a Prompt Guard 2-86M-shaped random model there.

Reads one JSON object on stdin: {"prompts": [...], "long": [...], "repeat_firewall": n}; writes one JSON object:
per-call seconds for
- `firewall`: `LlamaFirewall().scan(UserMessage(p))` as documented (the scanner is created again on every call);
- `scanner`: one `PromptGuardScanner` reused, `await scanner.scan(UserMessage(p))` (the model cost alone);
- `long`: the reused scanner on texts of about 512 tokens (it truncates at 512 and has no batching);
and the scores, so the caller can check that the model really ran.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    job = json.loads(sys.stdin.read())
    import torch

    torch.set_num_threads(job.get("threads", 2))
    from llamafirewall import LlamaFirewall, Role, ScannerType, UserMessage
    from llamafirewall.scanners.prompt_guard_scanner import PromptGuardScanner

    out: dict = {"versions": {}}
    import huggingface_hub
    import llamafirewall
    import transformers

    out["versions"] = {"llamafirewall": getattr(llamafirewall, "__version__", "1.0.3"),
                       "transformers": transformers.__version__, "huggingface_hub": huggingface_hub.__version__,
                       "torch": torch.__version__}

    started = time.perf_counter()
    scanner = PromptGuardScanner()
    out["load_seconds"] = time.perf_counter() - started

    async def scan_all(texts: list[str]) -> tuple[list[float], list[float]]:
        times, scores = [], []
        for text in texts:
            t0 = time.perf_counter()
            result = await scanner.scan(UserMessage(content=text))
            times.append(time.perf_counter() - t0)
            scores.append(float(result.score))
        return times, scores

    asyncio.run(scan_all(job["prompts"][:3]))  # warm-up
    out["scanner"], out["scanner_scores"] = asyncio.run(scan_all(job["prompts"]))
    out["long"], out["long_scores"] = asyncio.run(scan_all(job["long"]))

    firewall_times = []
    for text in job["prompts"][: job.get("repeat_firewall", 20)]:
        t0 = time.perf_counter()
        firewall = LlamaFirewall(scanners={Role.USER: [ScannerType.PROMPT_GUARD]})
        firewall.scan(UserMessage(content=text))
        firewall_times.append(time.perf_counter() - t0)
    out["firewall"] = firewall_times
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
