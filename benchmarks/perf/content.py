"""Content safety cost and quality: Purple's offline classifier against a Llama Guard 3-1B-shaped model, same CPU.

Measured in one run, on this machine's CPU (ours on onnxruntime, Llama Guard on torch, 2 threads each):

- ours: `purple.content.default_content_detector()` (or the model folder given with --model): load time; latency
  p50 / p99 of one short prompt per call (texts never seen before, so the encoder's cache misses); the same
  prompts again (cache hits, as when the same message is checked twice, e.g. in a prompt and again in a transcript); batched
  throughput on other short prompts;
- Llama Guard: `purple.llamaguard.LlamaGuard` (batched first-token scoring with a shared-prefix cache, Purple's fast
  path) on a Llama-Guard-3-1B-shaped model with random weights built by benchmarks/perf/llamaguard.py (real width
  and 128,256-entry vocabulary, but --lg-layers of the 16 layers on a CPU): cost per conversation, one short prompt
  per call, on the first --lg-conversations of the same prompts, at 1 and --lg-layers layers; the cost at 16 layers
  is extrapolated linearly from those two depths (an estimate, marked as such);
- the quality figures of `python -m purple.content.evaluate` (AUPRC, F1, per-category recall, over-refusal) on the
  held-out sources, from --quality-from JSON or computed here unless --no-quality.

Prompts are held-out English user prompts of 20-300 characters from ../shared/datasets (see purple.content.data),
half safe, half unsafe.

    .venv/bin/python benchmarks/perf/content.py [--model FOLDER] [--prompts 200] [--lg-conversations 32]
        [--lg-layers 2] [--quality-from FILE.json | --no-quality] [--write [--out FILE.md]]

`--write` saves the report to benchmarks/perf/results/content.md (or --out) and computed quality figures beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

TARGETS = {"auprc": 0.90, "over_refusal": 0.05, "p50_ms": 15.0}
LLAMA_GUARD_LAYERS = 16


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def read_prompts(data: Path, n: int, seed: int) -> list[str]:
    """2n distinct held-out English user prompts of 20-300 characters, alternating unsafe and safe."""
    from purple.content.data import load_corpus, split

    test = split(load_corpus(data), seed=seed).test
    rng = random.Random(seed)
    halves = []
    for unsafe in (True, False):
        pool = sorted({e.text for e in test if e.unsafe is unsafe and e.role == "user" and e.lang == "en"
                       and 20 <= len(e.text) <= 300})
        rng.shuffle(pool)
        if len(pool) < n:
            raise SystemExit(f"only {len(pool)} short held-out {'unsafe' if unsafe else 'safe'} prompts; "
                             f"ask for at most {len(pool) * 2} with --prompts")
        halves.append(pool[:n])
    return [text for pair in zip(*halves) for text in pair]


def measure_ours(model: Path | None, prompts: list[str]) -> dict[str, Any]:
    """Load time, single-prompt latency (cache misses, then hits) and batched throughput of the classifier."""
    from purple.content import ContentClassifier, default_content_detector
    from purple.types import Message

    started = time.perf_counter()
    detector = default_content_detector() if model is None else ContentClassifier(model)
    detector.check([Message("user", "warm up")])
    load_s = time.perf_counter() - started
    singles_set, batch_set = prompts[: len(prompts) // 2], prompts[len(prompts) // 2 :]
    for text in ("a first warm-up prompt", "and a second one, a little longer than the first"):
        detector.check([Message("user", text)])
    misses, hits = [], []
    for timings in (misses, hits):
        for text in singles_set:
            t0 = time.perf_counter()
            verdict = detector.check([Message("user", text)])
            timings.append(time.perf_counter() - t0)
            assert verdict.error is None, verdict.error
    t0 = time.perf_counter()
    detector.check_many([[Message("user", text)] for text in batch_set])
    batch_s = time.perf_counter() - t0
    encoder = detector.encoder
    return {
        "folder": os.path.relpath(encoder.folder, ROOT), "load_s": load_s, "prompts": len(singles_set),
        "p50_ms": 1000 * statistics.median(misses), "p99_ms": 1000 * pct(misses, 0.99),
        "hit_p50_ms": 1000 * statistics.median(hits), "batch_prompts": len(batch_set),
        "prompts_per_s": len(batch_set) / batch_s,
        "layers": int(encoder.config["num_hidden_layers"]), "hidden": int(encoder.config["hidden_size"]),
        "threads": encoder.threads,
    }


def measure_llama_guard(prompts: list[str], depths: list[int]) -> dict[int, dict[str, Any]]:
    """Cost per conversation of LlamaGuard.check on Llama-Guard-3-1B-shaped models with random weights, one model
    per depth (number of decoder layers), all with the same tokenizer and prompts."""
    from llamaguard import build_model, build_tokenizer  # benchmarks/perf/llamaguard.py

    from purple.llamaguard import LlamaGuard
    from purple.llamaguard.formats import default_taxonomy, get_format, render, to_turns
    from purple.models.hf import HFModel
    from purple.types import Message

    work = Path(tempfile.mkdtemp(prefix="purple-bench-"))
    fmt = get_format("3-1b")
    conversations = [[Message("user", text)] for text in prompts]
    rendered = [render(fmt, to_turns(c), default_taxonomy(fmt)) for c in conversations]
    tokenizer: Any = build_tokenizer(rendered + prompts, work / "tokenizer")
    tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in rendered]
    out: dict[int, dict[str, Any]] = {}
    for layers in depths:
        folder = work / f"random-llama-guard-3-1b-{layers}-layers"
        tokenizer.save_pretrained(folder)
        build_model(folder, "3-1b", layers, tokenizer)
        guard = LlamaGuard(HFModel(str(folder), device="cpu", dtype="float32", batch_size=1), version="3-1b")
        guard.check([Message("user", "warm up")])
        timings = []
        for conversation in conversations:
            t0 = time.perf_counter()
            verdict = guard.check(conversation)
            timings.append(time.perf_counter() - t0)
            assert verdict.error is None, verdict.error
        guard.close()
        shutil.rmtree(folder, ignore_errors=True)
        out[layers] = {"conversations": len(conversations), "p50_ms": 1000 * statistics.median(timings),
                       "p99_ms": 1000 * pct(timings, 0.99), "mean_prompt_tokens": statistics.mean(tokens)}
    shutil.rmtree(work, ignore_errors=True)
    return out


def full_depth_estimate(measured: dict[int, dict[str, Any]]) -> float | None:
    """p50 ms at 16 layers, extrapolated linearly from the two depths measured (None with one depth)."""
    if len(measured) < 2:
        return None
    low, high = sorted(measured)
    per_layer = max(0.0, (measured[high]["p50_ms"] - measured[low]["p50_ms"]) / (high - low))
    return measured[high]["p50_ms"] + (LLAMA_GUARD_LAYERS - high) * per_layer


def verdict_line(name: str, value: float | None, target: float, higher_is_better: bool, unit: str = "") -> str:
    if value is None:
        return f"- {name}: not measured (target {target}{unit})"
    met = value >= target if higher_is_better else value <= target
    return f"- {name}: **{value:.3f}{unit}** (target {'>=' if higher_is_better else '<='} {target}{unit}): " \
           f"{'met' if met else 'NOT met'}"


def report(ours: dict[str, Any], guard: dict[int, dict[str, Any]] | None, quality: dict[str, Any] | None) -> str:
    import onnxruntime
    import torch
    from llamaguard import SHAPES  # benchmarks/perf/llamaguard.py

    command = " ".join(["benchmarks/perf/content.py", *sys.argv[1:]])
    lines = [
        "# Content safety: Purple's offline classifier vs a Llama Guard 3-1B-shaped model",
        "",
        f"Command: `.venv/bin/python {command}`",
        "",
        f"- Machine: CPU, {os.cpu_count()} cores, {platform.machine()}; ours on onnxruntime "
        f"{onnxruntime.__version__} with {ours['threads']} threads, Llama Guard on torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads; everything below measured in the same run.",
        f"- Prompts: {ours['prompts'] + ours['batch_prompts']} held-out English user prompts (20-300 characters, half "
        "safe, half unsafe; sources never trained on), each classified as a one-message conversation.",
        f"- Ours: `{ours['folder']}` (frozen MiniLM encoder, {ours['layers']} layers, hidden {ours['hidden']}, "
        "int8 in onnxruntime, distilled for other languages; content head on the mean-pooled vector and the window's "
        "tokens), evasion normaliser on.",
    ]
    if guard:
        depths = sorted(guard)
        first = guard[depths[-1]]
        lines.append(
            f"- Llama Guard: `LlamaGuard.check` (Purple's first-token path with the prefix cache) on "
            f"Llama-Guard-3-1B-shaped `LlamaForCausalLM` models with random weights, real width (hidden "
            f"{SHAPES['3-1b']['hidden_size']}, MLP {SHAPES['3-1b']['intermediate_size']}, 32 heads, 8 KV heads) and "
            f"vocabulary (128,256), float32, with {' and '.join(str(d) for d in depths)} of the {LLAMA_GUARD_LAYERS} "
            f"layers (fewer layers on a CPU); rendered prompts {first['mean_prompt_tokens']:.0f} tokens on average; "
            f"one conversation per call, the first {first['conversations']} prompts. The full-depth figure is a "
            "linear extrapolation from the depths measured, not a measurement.")
    lines += [
        "",
        "| path | p50 ms / conversation | p99 ms / conversation |",
        "|---|---:|---:|",
        f"| **Purple offline classifier** (new text) | **{ours['p50_ms']:.1f}** | {ours['p99_ms']:.1f} |",
        f"| Purple offline classifier, text already encoded (encoder cache) | {ours['hit_p50_ms']:.2f} | - |",
    ]
    estimate = full_depth_estimate(guard) if guard else None
    if guard:
        for layers in sorted(guard):
            row = guard[layers]
            lines.append(f"| Llama Guard 3-1B shape, {layers} of {LLAMA_GUARD_LAYERS} layers (measured) | "
                         f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} |")
        if estimate is not None:
            lines.append(f"| Llama Guard 3-1B shape, {LLAMA_GUARD_LAYERS} layers (estimate) | {estimate:.0f} | - |")
    lines += ["", f"Batched, ours: {ours['prompts_per_s']:.0f} prompts/s ({ours['batch_prompts']} prompts in one "
                  f"`check_many`). Load time, ours: {ours['load_s']:.2f} s."]
    if guard:
        deepest = max(guard)
        ratio = f"Ratio (p50, same run, same prompts): Llama Guard's shape with {deepest} of {LLAMA_GUARD_LAYERS} " \
                f"layers costs **{guard[deepest]['p50_ms'] / ours['p50_ms']:.0f}x** ours (a lower bound)"
        if estimate is not None:
            ratio += f"; about {estimate / ours['p50_ms']:.0f}x at full depth (estimate)"
        lines.append(ratio + ".")
    lines += ["", "## Targets", ""]
    lines.append(verdict_line("AUPRC, unsafe vs safe, held-out sources",
                              quality["all"]["auprc"] if quality else None, TARGETS["auprc"], True))
    lines.append(verdict_line("over-refusal on held-out safe sensitive prompts",
                              quality["over_refusal"]["flagged"] if quality else None, TARGETS["over_refusal"], False))
    lines.append(verdict_line("p50 latency per short prompt", ours["p50_ms"], TARGETS["p50_ms"], False, " ms"))
    if quality:
        from purple.content.evaluate import markdown

        lines += ["", "## Quality on the held-out sources", "", markdown(quality)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--model", type=Path, help="an offline model folder (default: the shipped one)")
    parser.add_argument("--prompts", type=int, default=200, help="short prompts timed (and as many batched)")
    parser.add_argument("--lg-conversations", type=int, default=32, help="prompts Llama Guard's shape classifies")
    parser.add_argument("--lg-layers", type=int, default=2, help=f"decoder layers (the real 3-1B has "
                                                                  f"{LLAMA_GUARD_LAYERS}); 1 is measured too")
    parser.add_argument("--no-llama-guard", action="store_true", help="skip the Llama Guard-shaped comparison")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quality-from", type=Path, help="take the quality figures from this "
                                                         "`purple.content.evaluate --json` file (same model)")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--write", action="store_true", help="save the report (and computed quality figures)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "content.md", help="where --write saves it")
    args = parser.parse_args()
    if args.prompts < 2 or args.lg_conversations < 1 or args.lg_layers < 1:
        parser.error("--prompts must be at least 2, --lg-conversations and --lg-layers at least 1")

    import torch

    torch.set_num_threads(2)
    prompts = read_prompts(args.data, args.prompts, args.seed)
    try:
        ours = measure_ours(args.model, prompts)
    except (RuntimeError, ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"ours: {ours}", file=sys.stderr, flush=True)
    guard = None
    if not args.no_llama_guard:
        depths = sorted({1, args.lg_layers})
        guard = measure_llama_guard(prompts[: args.lg_conversations], depths)
        print(f"llama guard shape: {guard}", file=sys.stderr, flush=True)
    quality = None
    if args.quality_from:
        quality = json.loads(args.quality_from.read_text(encoding="utf-8"))
    elif not args.no_quality:
        from purple.content import ContentClassifier, default_content_detector
        from purple.content.data import load_corpus, split
        from purple.content.evaluate import evaluate

        detector = default_content_detector() if args.model is None else ContentClassifier(args.model)
        quality = evaluate(detector, split(load_corpus(args.data), seed=args.seed).test)
        quality["model"] = ours["folder"]
        if args.write:
            path = args.out.with_name(args.out.stem + "_quality.json")
            path.write_text(json.dumps(quality, indent=2) + "\n", encoding="utf-8")
    text = report(ours, guard, quality)
    print(text)
    if args.write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
