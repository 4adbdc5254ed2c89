"""Injection detection cost and quality: Purple's shipped offline model against the anchor's Prompt Guard path.

Measured in one run, on this machine's CPU:

- ours: `purple.promptguard.default_detector()` (the shipped offline model: 4 frozen MiniLM layers, int8, and a
  linear injection head on the pooled vector and the window's tokens):
  load time, latency p50 / p99 of one short prompt per call, batched throughput of short prompts, and batched
  throughput of full 512-token windows;
- anchor: the `llamafirewall` package's Prompt Guard scanner (PyPI 1.0.3, in its own virtualenv under .bench/, with
  huggingface_hub < 1.0 and transformers < 5 so that it imports) on a locally saved model of Prompt Guard 2-86M's
  shape (mDeBERTa-v3-base: 12 layers, hidden 768, 251,000-entry vocabulary) with random weights, since the real
  weights are gated: per-call latency through `LlamaFirewall.scan()` as documented (it builds the scanner on every
  call), through a reused scanner, and on 512-token texts (it truncates at 512 tokens, one text per forward pass);
- Purple's `PromptGuard` class on that same Prompt Guard 2-shaped model, to separate the model's cost from the path's;
- the quality figures of `python -m purple.promptguard.evaluate` (AUC, TPR at 1% FPR, hard-negative FPR, evasions)
  on the held-out sources, unless --no-quality.

If the anchor's virtualenv cannot be built (no registry), a plain transformers text-classification pipeline on the
same Prompt Guard 2-shaped model stands in for it, and the table says so.

    .venv/bin/python benchmarks/perf/promptguard.py [--prompts 200] [--long 48] [--write]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from purple.promptguard.detector import token_ids  # noqa: E402

BENCH = ROOT / ".bench"
ANCHOR_VENV = BENCH / "anchor-llamafirewall"
PG2_HOME = BENCH / "pg2-shaped-hf-home"
PG2_DIR = PG2_HOME / "meta-llama--Llama-Prompt-Guard-2-86M"
PG2_SHAPE = {
    "vocab_size": 251_000, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "max_position_embeddings": 512, "relative_attention": True, "position_buckets": 256,
    "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm", "share_att_key": True, "type_vocab_size": 0,
    "position_biased_input": False, "max_relative_positions": -1, "layer_norm_eps": 1e-7,
}


# ------------------------------------------------------------------------------------------------ inputs
def read_inputs(data: Path, n_prompts: int, n_long: int, seed: int) -> tuple[list[str], list[str]]:
    """Short prompts (held-out English sources, both classes) and long third-party texts for 512-token windows."""
    rng = random.Random(seed)
    prompts: list[str] = []
    pi = json.loads((data / "cyberseceval" / "prompt_injection" / "prompt_injection.json").read_text())
    prompts += [row["user_input"] for row in pi]
    for line in (data / "benign_prompts" / "self_instruct" / "user_oriented_instructions.jsonl").read_text().split("\n"):
        if line.strip():
            prompts.append(json.loads(line)["instruction"])
    prompts = [p for p in prompts if 20 <= len(p) <= 400]
    rng.shuffle(prompts)
    docs = []
    with gzip.open(data / "benign_documents" / "documents.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["lang"] == "en" and len(row["text"]) > 3000:
                docs.append(row["text"])
    rng.shuffle(docs)
    return prompts[:n_prompts], docs[:n_long]


def to_tokens(tokenizer: Any, texts: list[str], n: int) -> list[str]:
    """Each text cut to exactly n tokens of this tokenizer (so it fills one window with the special tokens)."""
    out = []
    for text in texts:
        out.append(tokenizer.decode(token_ids(tokenizer, text)[:n]))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ----------------------------------------------------------------------------------------------- ours
def measure_ours(prompts: list[str], long_texts: list[str]) -> dict[str, Any]:
    import onnxruntime

    from purple.promptguard import default_detector

    started = time.perf_counter()
    detector = default_detector()
    detector.score_texts(["warm up"])
    load = time.perf_counter() - started
    detector.encoder.cache_size = 0  # time real work: no vector is reused between calls
    for p in prompts[:10]:
        detector.score_texts([p])
    singles = []
    for p in prompts:
        t0 = time.perf_counter()
        detector.score_texts([p])
        singles.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    detector.score_texts(prompts)
    batch_s = time.perf_counter() - t0
    texts_512 = to_tokens(detector.tokenizer, long_texts, 510)  # 512-token texts, read in the model's own windows
    t0 = time.perf_counter()
    details = detector.score_details(texts_512, "tool")
    long_s = time.perf_counter() - t0
    n_windows = sum(d.windows for d in details)
    return {
        "load_s": load, "p50_ms": 1000 * statistics.median(singles), "p99_ms": 1000 * pct(singles, 0.99),
        "prompts_per_s": len(prompts) / batch_s, "windows": n_windows, "windows_per_s": len(texts_512) / long_s,
        "windows_per_text": n_windows / max(1, len(texts_512)),
        "window": detector.encoder.window, "threads": detector.encoder.threads,
        "runtime": f"onnxruntime {onnxruntime.__version__}",
        "params": stored_parameters(detector),
    }


def stored_parameters(detector: Any) -> int:
    """Parameters of the detector's model: the offline model's stored tensors (int8 scales not counted), or torch's."""
    encoder = getattr(detector, "encoder", None)
    if encoder is None:
        return sum(p.numel() for p in detector.model.parameters())
    from safetensors import safe_open

    with safe_open(str(encoder.folder / "model.safetensors"), framework="np") as handle:
        return sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys() if not k.endswith(".__scale"))


# ------------------------------------------------------------------------------------------- PG2 shape
def build_pg2_shaped(texts: list[str]) -> Path:
    """A Prompt Guard 2-86M-shaped DeBERTa-v2 classifier, random weights, with a 32k Unigram tokenizer."""
    if (PG2_DIR / "config.json").is_file():
        return PG2_DIR
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=32_000, special_tokens=specials,
                                                           unk_token="[UNK]", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   unk_token="[UNK]", mask_token="[MASK]", model_max_length=512)
    config = DebertaV2Config(**PG2_SHAPE, num_labels=2, id2label={0: "LABEL_0", 1: "LABEL_1"},
                             label2id={"LABEL_0": 0, "LABEL_1": 1}, pad_token_id=0)
    torch.manual_seed(0)
    model = DebertaV2ForSequenceClassification(config).eval()
    PG2_DIR.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(PG2_DIR)
    fast.save_pretrained(PG2_DIR)
    # transformers 5 names its tokenizer class TokenizersBackend; the anchor's transformers 4 knows the old name
    config_file = PG2_DIR / "tokenizer_config.json"
    tok_config = json.loads(config_file.read_text())
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(tok_config, indent=2))
    return PG2_DIR


def measure_purple_on_pg2_shape(prompts: list[str], long_texts: list[str]) -> dict[str, Any]:
    from purple.promptguard import PromptGuard

    detector = PromptGuard.from_pretrained(PG2_DIR, version=2)
    for p in prompts[:5]:
        detector.score_texts([p])
    singles = []
    for p in prompts:
        t0 = time.perf_counter()
        detector.score_texts([p])
        singles.append(time.perf_counter() - t0)
    windows = to_tokens(detector.tokenizer, long_texts, 510)
    t0 = time.perf_counter()
    details = detector.score_details(windows, "tool")
    long_s = time.perf_counter() - t0
    n_windows = sum(d.windows for d in details)
    return {"p50_ms": 1000 * statistics.median(singles), "p99_ms": 1000 * pct(singles, 0.99),
            "windows_per_s": n_windows / long_s, "windows": n_windows,
            "params": sum(p.numel() for p in detector.model.parameters())}


# ---------------------------------------------------------------------------------------------- anchor
def ensure_anchor() -> Path | None:
    python = ANCHOR_VENV / "bin" / "python"
    check = [str(python), "-c", "import llamafirewall.scanners.prompt_guard_scanner"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)
        subprocess.run(pip + ["--no-deps", "llamafirewall==1.0.3"], check=True)
        subprocess.run(pip + ["transformers<5", "huggingface_hub<1.0", "pydantic>=2", "numpy", "typer", "openai"],
                       check=True)
        subprocess.run(check, check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"anchor virtualenv not available ({exc}); using a transformers pipeline instead", file=sys.stderr)
        return None
    return python


def measure_anchor(python: Path, prompts: list[str], long_texts: list[str], repeat_firewall: int) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(PG2_DIR))
    job = {"prompts": prompts, "long": to_tokens(tokenizer, long_texts, 510), "repeat_firewall": repeat_firewall,
           "threads": 2}
    env = {**os.environ, "HF_HOME": str(PG2_HOME), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([str(python), str(HERE / "anchor_promptguard_worker.py")], input=json.dumps(job),
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"anchor worker failed: {result.stderr[-1500:]}")
    raw = json.loads(result.stdout)
    return {
        "versions": raw["versions"], "load_s": raw["load_seconds"],
        "scanner_p50_ms": 1000 * statistics.median(raw["scanner"]), "scanner_p99_ms": 1000 * pct(raw["scanner"], 0.99),
        "firewall_p50_ms": 1000 * statistics.median(raw["firewall"]),
        "firewall_p99_ms": 1000 * pct(raw["firewall"], 0.99), "firewall_calls": len(raw["firewall"]),
        "windows_per_s": len(raw["long"]) / sum(raw["long"]), "windows": len(raw["long"]),
        "kind": "llamafirewall",
    }


def measure_pipeline(prompts: list[str], long_texts: list[str]) -> dict[str, Any]:
    """Stand-in for the anchor: a transformers text-classification pipeline, one text per call, truncating at 512."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(str(PG2_DIR))
    model = AutoModelForSequenceClassification.from_pretrained(str(PG2_DIR))
    clf = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu", truncation=True,
                   max_length=512)
    clf(prompts[:3])
    singles = []
    for p in prompts:
        t0 = time.perf_counter()
        clf(p)
        singles.append(time.perf_counter() - t0)
    windows = to_tokens(tokenizer, long_texts, 510)
    t0 = time.perf_counter()
    for w in windows:
        clf(w)
    long_s = time.perf_counter() - t0
    return {"scanner_p50_ms": 1000 * statistics.median(singles), "scanner_p99_ms": 1000 * pct(singles, 0.99),
            "windows_per_s": len(texts_512) / long_s, "windows": len(windows), "kind": "pipeline"}


# ---------------------------------------------------------------------------------------------- report
def report(args: argparse.Namespace, ours: dict, shape: dict | None, anchor: dict | None, quality: dict | None,
           n_prompts: int, n_long: int) -> str:
    import torch

    lines = [
        "# Injection detection: Purple's offline model vs the anchor's Prompt Guard path",
        "",
        f"Command: `.venv/bin/python benchmarks/perf/promptguard.py --prompts {args.prompts} --long {args.long}"
        f"{f' --quality-from {args.quality_from}' if args.quality_from else ''}{' --write' if args.write else ''}`",
        "",
        f"- Machine: CPU, {os.cpu_count()} cores, {platform.machine()}; ours on {ours['runtime']} with "
        f"{ours['threads']} threads, the PG2-shaped paths on torch {torch.__version__}; everything below measured in "
        "the same run.",
        f"- Inputs: {n_prompts} short prompts (CyberSecEval prompt injections and self-instruct requests, 20-400 "
        f"characters) scored one per call; {n_long} English documents cut to one full 512-token window each.",
        f"- Ours: the shipped offline model (4 frozen all-MiniLM-L6-v2 layers, int8 in onnxruntime, with linear heads; "
        f"{ours['params'] / 1e6:.1f} M stored parameters), evasion normaliser on, all texts in one call (the "
        "encoder runs one window at a time, so a score does not depend on its batch).",
    ]
    if anchor and anchor.get("kind") == "llamafirewall":
        v = anchor["versions"]
        lines.append(
            f"- Anchor: llamafirewall {v['llamafirewall']} (transformers {v['transformers']}, huggingface_hub "
            f"{v['huggingface_hub']}) `PromptGuardScanner` on a Prompt Guard 2-86M-shaped DeBERTa-v2 with random "
            f"weights ({shape['params'] / 1e6:.0f} M parameters) saved where LlamaFirewall looks for it, offline.")
    elif anchor:
        lines.append("- Anchor stand-in: a transformers text-classification pipeline on the Prompt Guard 2-86M-shaped "
                     "random model (the llamafirewall virtualenv could not be built).")
    lines += ["", "| path | p50 ms / prompt | p99 ms / prompt | 512-token texts / s |", "|---|---:|---:|---:|",
              f"| **Purple offline model** (`default_detector()`) | **{ours['p50_ms']:.1f}** | {ours['p99_ms']:.1f} | "
              f"**{ours['windows_per_s']:.1f}** (all in one call) |"]
    if shape:
        lines.append(f"| Purple `PromptGuard` on the PG2-86M shape | {shape['p50_ms']:.1f} | {shape['p99_ms']:.1f} | "
                     f"{shape['windows_per_s']:.2f} (batched) |")
    if anchor:
        name = "llamafirewall `PromptGuardScanner`, reused" if anchor["kind"] == "llamafirewall" else "pipeline"
        lines.append(f"| anchor: {name} | {anchor['scanner_p50_ms']:.1f} | {anchor['scanner_p99_ms']:.1f} | "
                     f"{anchor['windows_per_s']:.2f} (one per call) |")
        if anchor["kind"] == "llamafirewall":
            lines.append(f"| anchor: `LlamaFirewall().scan()` as documented ({anchor['firewall_calls']} calls) | "
                         f"{anchor['firewall_p50_ms']:.1f} | {anchor['firewall_p99_ms']:.1f} | - |")
    lines += ["", f"Batched short prompts, ours: {ours['prompts_per_s']:.0f} prompts/s. Load time, ours: "
                  f"{ours['load_s']:.2f} s" + (f"; anchor scanner: {anchor['load_s']:.2f} s." if anchor and
                                               'load_s' in anchor else ".")]
    if anchor:
        lines.append(f"Ratios (same run): p50 latency {anchor['scanner_p50_ms'] / ours['p50_ms']:.1f}x lower than the "
                     f"reused anchor scanner; 512-token throughput {ours['windows_per_s'] / anchor['windows_per_s']:.1f}x "
                     "higher.")
    lines.append(f"Ours reads each 512-token text as {ours['windows_per_text']:.1f} overlapping {ours['window']}-token "
                 "windows (its training length); the Prompt Guard paths read it as one 512-token window. The shared "
                 "encoder's vector cache is off for these timings.")
    if quality:
        from purple.promptguard.evaluate import markdown

        lines += ["", "## Quality on the held-out sources", "", markdown(quality)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--long", type=int, default=48)
    parser.add_argument("--firewall-calls", type=int, default=20)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--quality-from", type=Path,
                        help="take the quality figures from this `evaluate --json` file (same model) instead of "
                             "scoring the held-out set again")
    parser.add_argument("--write", action="store_true", help="save to benchmarks/perf/results/promptguard.md")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    prompts, long_texts = read_inputs(args.data, args.prompts, args.long, args.seed)
    ours = measure_ours(prompts, long_texts)
    print(f"ours: {ours}", file=sys.stderr, flush=True)
    shape = anchor = quality = None
    if not args.no_anchor:
        build_pg2_shaped(prompts + long_texts * 3)
        shape = measure_purple_on_pg2_shape(prompts, long_texts)
        print(f"purple on PG2 shape: {shape}", file=sys.stderr, flush=True)
        python = ensure_anchor()
        try:
            anchor = measure_anchor(python, prompts, long_texts, args.firewall_calls) if python else None
        except RuntimeError as exc:
            print(str(exc), file=sys.stderr)
        if anchor is None:
            anchor = measure_pipeline(prompts, long_texts)
        print(f"anchor: {anchor}", file=sys.stderr, flush=True)
    if args.quality_from:
        quality = json.loads(args.quality_from.read_text(encoding="utf-8"))
    elif not args.no_quality:
        from purple.promptguard.data import load_corpus, split
        from purple.promptguard.detector import default_detector
        from purple.promptguard.evaluate import evaluate

        parts = split(load_corpus(args.data, seed=args.seed), seed=args.seed)
        quality = evaluate(default_detector(), parts.test, seed=args.seed)
        (HERE / "results").mkdir(exist_ok=True)
        if args.write:
            (HERE / "results" / "promptguard_quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    text = report(args, ours, shape, anchor, quality, len(prompts), len(long_texts))
    print(text)
    if args.write:
        (HERE / "results" / "promptguard.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
