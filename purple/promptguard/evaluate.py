"""Quality figures of an injection detector on the held-out sources (the numbers in the model card).

    python -m purple.promptguard.evaluate --data ../shared/datasets [--model purple/promptguard/model]
        [--json results.json] [--write-card]

Scores every held-out example (see `purple.promptguard.data`) exactly as the firewall does (normalised, 512-token
windows, maximum over windows) and reports: ROC AUC, the true-positive rate at 1% false-positive rate (threshold set on
the held-out benign scores), the true- and false-positive rates at the model's own threshold, the false-positive rate
on the held-out hard negatives, per-source figures, and recall under each evasion (clean recall vs disguised recall,
with and without the normaliser). `--write-card` puts the tables into MODEL_CARD.md between its metrics markers.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from purple.promptguard.data import HARD_NEGATIVE_GROUPS, Example, load_corpus, split
from purple.promptguard.detector import MODEL_DIR, InjectionDetector, load_detector
from purple.promptguard.evasions import EVASIONS, apply_to_payload
from purple.offline.metrics import roc_auc, threshold_for_fpr
from purple.resources import shown_path

CONTEXT_DEPENDENT_GROUPS = frozenset({"cyberseceval/prompt_injection", "cyberseceval/prompt_injection_multilingual"})
"""Positives whose label depends on a system prompt the detector never sees (off-topic questions count as injections)."""
MULTILINGUAL_GROUPS = frozenset({"cyberseceval/prompt_injection_multilingual", "cyberseceval/mitre_frr_multilingual"})
EVASION_GROUPS = ("cyberseceval/prompt_injection", "injection_extra/agentdojo", "pyrit/templates-other",
                  "injection_extra/spikee-seeds-composed/owasp-cheatsheets")
CARD_START, CARD_END = "<!-- injection-metrics:start -->", "<!-- injection-metrics:end -->"


def summary(scores: list[float], labels: list[int], threshold: float) -> dict[str, Any]:
    benign = [s for s, y in zip(scores, labels) if y == 0]
    malicious = [s for s, y in zip(scores, labels) if y == 1]
    at_1 = threshold_for_fpr(benign, 0.01)
    return {
        "benign": len(benign),
        "malicious": len(malicious),
        "auc": round(roc_auc(scores, labels), 4),
        "tpr_at_1pct_fpr": round(sum(s >= at_1 for s in malicious) / max(1, len(malicious)), 4),
        "threshold_at_1pct_fpr": round(at_1, 4),
        "tpr_at_threshold": round(sum(s >= threshold for s in malicious) / max(1, len(malicious)), 4),
        "fpr_at_threshold": round(sum(s >= threshold for s in benign) / max(1, len(benign)), 4),
    }


def evaluate(detector: InjectionDetector, test: list[Example], evasion_sample: int = 300, seed: int = 13,
             progress: bool = True) -> dict[str, Any]:
    threshold = detector.threshold
    started = time.time()
    scores = detector.score_texts([ex.text for ex in test])
    scoring_s = time.time() - started
    labels = [ex.label for ex in test]
    if progress:
        print(f"scored {len(test)} held-out texts in {scoring_s:.0f} s", file=sys.stderr, flush=True)
    result: dict[str, Any] = {"threshold": threshold, "scoring_seconds": round(scoring_s, 1)}
    result["all"] = summary(scores, labels, threshold)
    keep = [i for i, ex in enumerate(test) if ex.group not in MULTILINGUAL_GROUPS]
    result["english"] = summary([scores[i] for i in keep], [labels[i] for i in keep], threshold)
    keep = [i for i, ex in enumerate(test) if ex.group not in MULTILINGUAL_GROUPS | CONTEXT_DEPENDENT_GROUPS]
    result["english_context_free"] = summary([scores[i] for i in keep], [labels[i] for i in keep], threshold)
    benign_scores = [s for s, y in zip(scores, labels) if y == 0]
    hard = [s for s, ex in zip(scores, test) if ex.group in HARD_NEGATIVE_GROUPS]
    result["hard_negatives"] = {
        "examples": len(hard),
        "fpr_at_threshold": round(sum(s >= threshold for s in hard) / max(1, len(hard)), 4),
        "fpr_at_1pct_fpr_threshold": round(
            sum(s >= result["all"]["threshold_at_1pct_fpr"] for s in hard) / max(1, len(hard)), 4),
    }
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(test):
        groups[ex.group].append(i)
    per_group = {}
    for group, idx in sorted(groups.items()):
        label = test[idx[0]].label
        group_scores = [scores[i] for i in idx]
        row: dict[str, Any] = {"label": "malicious" if label else "benign", "examples": len(idx)}
        if label:
            row["tpr_at_threshold"] = round(sum(s >= threshold for s in group_scores) / len(idx), 4)
            row["auc_vs_all_benign"] = round(roc_auc(group_scores + benign_scores, [1] * len(idx) + [0] * len(benign_scores)), 4)
        else:
            row["fpr_at_threshold"] = round(sum(s >= threshold for s in group_scores) / len(idx), 4)
        row["median_score"] = round(statistics.median(group_scores), 4)
        per_group[group] = row
    result["groups"] = per_group
    if evasion_sample:
        result["evasions"] = evasion_recall(detector, test, evasion_sample, seed)
    return result


def evasion_recall(detector: InjectionDetector, test: list[Example], sample: int, seed: int) -> dict[str, Any]:
    """Recall at the model's threshold on English held-out positives, clean and under each evasion."""
    rng = random.Random(seed)
    pool = [ex for ex in test if ex.group in EVASION_GROUPS and ex.label == 1]
    rng.shuffle(pool)
    pool = pool[:sample]
    threshold = detector.threshold

    def recall(texts: list[str]) -> float:
        return sum(s >= threshold for s in detector.score_texts(texts)) / max(1, len(texts))

    clean = recall([ex.text for ex in pool])
    out: dict[str, Any] = {"examples": len(pool), "clean_recall": round(clean, 4), "transforms": {}}
    saved = detector.normalize
    try:
        for name, transform in EVASIONS.items():
            t_rng = random.Random(f"{seed}-{name}")
            disguised = [apply_to_payload(ex.text, ex.payload, transform, t_rng) for ex in pool]
            detector.normalize = True
            with_norm = recall(disguised)
            detector.normalize = False
            without = recall(disguised)
            detector.normalize = saved
            out["transforms"][name] = {
                "recall": round(with_norm, 4),
                "ratio_to_clean": round(with_norm / clean, 4) if clean else None,
                "recall_without_normalizer": round(without, 4),
            }
    finally:
        detector.normalize = saved
    return out


def markdown(result: dict[str, Any], split_counts: dict[str, Any] | None = None) -> str:
    a, e, h = result["all"], result["english"], result["hard_negatives"]
    c = result["english_context_free"]
    lines = [
        f"Threshold (from the validation slice): **{result['threshold']}**.",
        "",
        "| held-out set | benign | malicious | ROC AUC | TPR @ 1% FPR | TPR @ threshold | FPR @ threshold |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| all held-out sources | {a['benign']} | {a['malicious']} | {a['auc']:.4f} | {a['tpr_at_1pct_fpr']:.3f} | "
        f"{a['tpr_at_threshold']:.3f} | {a['fpr_at_threshold']:.3f} |",
        f"| English only (no machine-translated sets) | {e['benign']} | {e['malicious']} | {e['auc']:.4f} | "
        f"{e['tpr_at_1pct_fpr']:.3f} | {e['tpr_at_threshold']:.3f} | {e['fpr_at_threshold']:.3f} |",
        f"| English, without CyberSecEval prompt injection (labels that need the system prompt) | {c['benign']} | "
        f"{c['malicious']} | {c['auc']:.4f} | {c['tpr_at_1pct_fpr']:.3f} | {c['tpr_at_threshold']:.3f} | "
        f"{c['fpr_at_threshold']:.3f} |",
        "",
        f"False-positive rate on the {h['examples']} held-out hard negatives (role prompts, benign cyber requests, "
        f"'ignore the previous draft' emails, investment questions, OWASP security docs): **{h['fpr_at_threshold']:.3f}** "
        f"at the threshold, {h['fpr_at_1pct_fpr_threshold']:.3f} at the 1%-FPR threshold.",
        "",
        "Per held-out source:",
        "",
        "| source | class | n | TPR / FPR @ threshold | AUC vs all held-out benign | median score |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for group, row in result["groups"].items():
        rate = row.get("tpr_at_threshold", row.get("fpr_at_threshold"))
        auc = row.get("auc_vs_all_benign")
        lines.append(f"| {group} | {row['label']} | {row['examples']} | {rate:.3f} | "
                     f"{'' if auc is None else f'{auc:.4f}'} | {row['median_score']:.3f} |")
    if "evasions" in result:
        ev = result["evasions"]
        lines += [
            "",
            f"Evasions: {ev['examples']} English held-out positives (CyberSecEval, AgentDojo, PyRIT other templates, "
            f"OWASP-carried attacks; for attacks inside documents only the attack is disguised). Clean recall at the "
            f"threshold: **{ev['clean_recall']:.3f}**.",
            "",
            "| evasion | recall | recall / clean recall | recall without the normaliser |",
            "|---|---:|---:|---:|",
        ]
        for name, row in ev["transforms"].items():
            lines.append(f"| {name} | {row['recall']:.3f} | {row['ratio_to_clean']:.3f} | "
                         f"{row['recall_without_normalizer']:.3f} |")
    return "\n".join(lines)


def write_card(card: Path, text: str) -> None:
    body = card.read_text(encoding="utf-8")
    start, end = body.index(CARD_START) + len(CARD_START), body.index(CARD_END)
    card.write_text(body[:start] + "\n" + text + "\n" + body[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m purple.promptguard.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--model", type=Path, default=MODEL_DIR)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--evasion-sample", type=int, default=300)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--write-card", action="store_true", help="update MODEL_CARD.md beside the model")
    args = parser.parse_args(argv)

    detector = load_detector(args.model)
    parts = split(load_corpus(args.data, seed=args.seed), seed=args.seed)
    result = evaluate(detector, parts.test, args.evasion_sample, args.seed)
    result["model"] = shown_path(args.model)
    text = markdown(result)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.write_card:
        write_card(args.model / "MODEL_CARD.md", text)


if __name__ == "__main__":
    main()
