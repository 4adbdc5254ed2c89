"""Llama Guard scoring speed: Purple's batched first-token scoring against per-conversation `generate()`.

A Llama-Guard-3-1B-shaped model with random weights (the real width and vocabulary: hidden 2048, 32 heads,
8 KV heads, MLP 8192, vocabulary 128,256; fewer layers on a CPU) classifies the same conversations two ways in
one run:

- anchor: one conversation at a time, `model.generate()` on the rendered prompt as the model card shows it,
  stopped after 3 new tokens -- the length of a real 'safe' answer (blank line, 'safe', end of turn), since a
  random model never emits the end-of-turn token by itself;
- ours: `LlamaGuard.check_many` -- batched forward passes that read P(unsafe) from the first answer token, reuse
  the shared prompt prefix, and generate category codes only for conversations found unsafe.

Conversations are real prompts from ../shared/datasets (safe and unsafe halves). Usage:

    .venv/bin/python benchmarks/perf/llamaguard.py [--layers 2] [--conversations 256] [--write]

`--write` saves the table to benchmarks/perf/results/llamaguard.md. On a GPU pass `--device cuda --dtype bfloat16
--layers 16` (3-1B) or `--shape 3-8b --layers 32` for the full shapes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "3-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32, "num_key_value_heads": 8,
             "num_hidden_layers": 16, "tie_word_embeddings": True},
    "3-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
             "num_hidden_layers": 32, "tie_word_embeddings": False},
}
VOCAB = 128_256
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
            "<|eom_id|>", "<|image|>", "<|finetune_right_pad_id|>"]


def read_texts(data: Path, n: int, seed: int) -> list[tuple[str, str]]:
    """n prompts, half safe (safe_sensitive_prompts) and half unsafe (harmful_prompts_categorized)."""
    halves = []
    for folder, label in (("safe_sensitive_prompts", "safe"), ("harmful_prompts_categorized", "unsafe")):
        rows = []
        for path in sorted((data / folder).glob("*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                rows.extend(json.loads(line)["text"] for line in handle if line.strip())
        if not rows:
            raise SystemExit(f"no prompts under {data / folder}; pass --data PATH_TO/shared/datasets")
        random.Random(seed).shuffle(rows)
        halves.append([(label, t[:2000]) for t in rows[: n // 2]])
    return [pair for pair in halves[0] + halves[1]]


def build_tokenizer(texts: list[str], folder: Path) -> object:
    """A byte-level BPE trained on the prompts, padded with reserved special tokens to Llama 3's 128,256."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=32_000, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|finetune_right_pad_id|>")
    reserved = [f"<|reserved_special_token_{i}|>" for i in range(VOCAB - len(fast))]
    fast.add_special_tokens({"additional_special_tokens": reserved})
    assert len(fast) == VOCAB, len(fast)
    fast.save_pretrained(folder)
    return fast


def build_model(folder: Path, shape: str, layers: int, tokenizer: object) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, **{**SHAPES[shape], "num_hidden_layers": layers},
                         max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                         bos_token_id=0, eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
                         pad_token_id=tokenizer.pad_token_id)  # type: ignore[attr-defined]
    LlamaForCausalLM(config).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="3-1b")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers (the real 3-1B has 16, 3-8B 32)")
    parser.add_argument("--conversations", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--anchor-tokens", type=int, default=3)
    parser.add_argument("--round", type=int, default=32, help="conversations per interleaved timing round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="save the table to benchmarks/perf/results/llamaguard.md")
    args = parser.parse_args()

    import torch

    from purple.llamaguard import LlamaGuard
    from purple.models.hf import HFModel
    from purple.types import Message

    pairs = read_texts(args.data, args.conversations, args.seed)
    conversations = [[Message("user", text)] for _, text in pairs]
    work = Path(tempfile.mkdtemp(prefix="purple-bench-")) / f"random-llama-guard-{args.shape}"
    started = time.perf_counter()
    from purple.llamaguard.formats import default_taxonomy, get_format, render, to_turns

    fmt = get_format(args.shape)
    taxonomy = default_taxonomy(fmt)
    prompts = [render(fmt, to_turns(c), taxonomy) for c in conversations]
    tokenizer = build_tokenizer(prompts + [t for _, t in pairs], work)
    build_model(work, args.shape, args.layers, tokenizer)
    print(f"built {args.shape}-shaped model with {args.layers} layers in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)

    model = HFModel(str(work), device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    guard = LlamaGuard(model, version=args.shape)
    lengths = [len(model.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]

    def anchor(prompt: str) -> str:
        ids = model.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
        with torch.inference_mode():
            out = model.model.generate(ids, max_new_tokens=args.anchor_tokens, min_new_tokens=args.anchor_tokens,
                                       do_sample=False, pad_token_id=model.tokenizer.pad_token_id)
        return model.tokenizer.decode(out[0, ids.shape[1]:])

    anchor(prompts[0])  # warm-up both paths
    guard.check_many(conversations[:2])
    model._prefixes.clear()  # noqa: SLF001 - the timed run builds its own prefix cache

    # Interleave the two paths in rounds so that a change in machine load hits both alike.
    anchor_s = ours_s = 0.0
    verdicts = []
    for start in range(0, len(prompts), args.round):
        t0 = time.perf_counter()
        for prompt in prompts[start : start + args.round]:
            anchor(prompt)
        anchor_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        verdicts += guard.check_many(conversations[start : start + args.round])
        ours_s += time.perf_counter() - t0
        print(f"{start + args.round}/{len(prompts)}: anchor {anchor_s:.0f} s, ours {ours_s:.0f} s", file=sys.stderr)
    assert all(v.error is None and 0.0 <= v.score <= 1.0 for v in verdicts)

    n = len(conversations)
    rows = [
        ("per-conversation `generate()` (anchor)", anchor_s, n / anchor_s),
        ("`LlamaGuard.check_many` (ours)", ours_s, n / ours_s),
    ]
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU, {os.cpu_count()} cores"
    lines = [
        "# Llama Guard scoring: batched first-token scoring vs per-conversation generate()",
        "",
        f"Command: `.venv/bin/python benchmarks/perf/llamaguard.py --layers {args.layers} "
        f"--conversations {n} --round {args.round} --batch-size {args.batch_size}{' --device ' + args.device if args.device != 'cpu' else ''}`",
        "",
        f"- Model: Llama-Guard-{args.shape.upper()}-shaped `LlamaForCausalLM`, random weights, real width "
        f"(hidden {SHAPES[args.shape]['hidden_size']}, MLP {SHAPES[args.shape]['intermediate_size']}, 32 heads, "
        f"8 KV heads) and vocabulary ({VOCAB:,}), **{args.layers} of {SHAPES[args.shape]['num_hidden_layers']} layers**"
        f"{' (fewer layers on this CPU)' if args.layers < SHAPES[args.shape]['num_hidden_layers'] else ''}; "
        f"dtype {model.model.dtype}.",
        f"- Conversations: {n} real prompts (half safe, half unsafe) from ../shared/datasets, prompt classification; "
        f"rendered prompts {min(lengths)}-{max(lengths)} tokens, mean {statistics.mean(lengths):.0f} "
        "(tokenizer: byte-level BPE trained on these prompts, padded to 128,256 entries).",
        f"- Anchor: `model.generate(input_ids, max_new_tokens={args.anchor_tokens})` one conversation at a time "
        "(a real model stops after 3 tokens for 'safe': blank line, 'safe', end of turn).",
        f"- Ours: batches of {args.batch_size}, P(unsafe) from the first answer token in one forward pass, shared "
        "prompt prefix computed once, codes generated only for unsafe conversations (none are at threshold 0.5 "
        "with random weights, so this is the scoring cost).",
        f"- Machine: {device}, {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"the two paths alternate in rounds of {args.round} conversations so load changes hit both alike.",
        "",
        "| path | seconds | conversations/s |",
        "|---|---:|---:|",
        *[f"| {name} | {secs:.1f} | {rate:.2f} |" for name, secs, rate in rows],
        "",
        f"**Ratio: {anchor_s / ours_s:.1f}x** (ours vs anchor, same model, same conversations, same run).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        out = ROOT / "benchmarks" / "perf" / "results" / "llamaguard.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
