"""Quality figures of the offline content classifier on the held-out sources (the numbers in the model card).

    python -m purple.content.evaluate --data ../shared/datasets [--model purple/offline/content_model]
        [--json results.json] [--write-card]

Scores every held-out example (see `purple.content.data`) exactly as the detector does (normalised, the model's
windows, maximum over windows, all hazards selected) and reports, at the model's own threshold: AUPRC, ROC AUC and
precision / recall / F1 / FPR for unsafe vs safe (all held-out sources, English only, prompts and agent responses
apart); the over-refusal rate (the share of held-out safe questions on sensitive topics that are flagged); recall
per hazard category (flagged at all, and flagged with that code among the labels), how many codes a flagged unsafe
text gets and how often each agrees with the source's codes; the weak-label rows on their
own (unsafe only under a stricter policy: left out of the figures above); and one row per held-out source.
`--write-card` puts the tables into MODEL_CARD.md beside the model, between the content markers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from purple.content.data import (
    CATEGORIES,
    OVER_REFUSAL_GROUPS,
    ContentExample,
    is_weak_label,
    load_corpus,
    split,
)
from purple.content.detector import ContentClassifier
from purple.offline.encoder import CONTENT_MODEL_DIR
from purple.report.classification import average_precision, classification_metrics
from purple.resources import shown_path

CARD_START, CARD_END = "<!-- content-metrics:start -->", "<!-- content-metrics:end -->"
CARD_TITLE = "## Content safety: held-out evaluation"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summary(examples: list[ContentExample], scores: list[float], threshold: float) -> dict[str, Any]:
    """Counts, AUPRC and ROC AUC from the scores, precision / recall / F1 / FPR at the threshold."""
    labels = [int(e.unsafe) for e in examples]
    metrics = classification_metrics(labels, scores, [int(s >= threshold) for s in scores])
    return {"safe": len(labels) - sum(labels), "unsafe": sum(labels), **{k: _round(v) for k, v in metrics.items()}}


def evaluate(detector: ContentClassifier, test: list[ContentExample], progress: bool = True) -> dict[str, Any]:
    """Every figure of the module docstring for the held-out examples `test`."""
    threshold = detector.threshold
    started = time.perf_counter()
    details = detector.score_details([e.text for e in test])
    seconds = time.perf_counter() - started
    if progress:
        print(f"scored {len(test)} held-out texts in {seconds:.0f} s", file=sys.stderr, flush=True)
    failed = [(e.group, d.error) for e, d in zip(test, details) if d.error]
    if failed:
        raise ValueError(f"{len(failed)} held-out text(s) could not be scored (first: {failed[0][0]}: {failed[0][1]})")
    scores = [d.unsafe for d in details]
    verdicts = [detector.verdict_for(d) for d in details]
    main = [i for i, e in enumerate(test) if not is_weak_label(e)]

    def part(keep: list[int]) -> dict[str, Any]:
        return summary([test[i] for i in keep], [scores[i] for i in keep], threshold)

    result: dict[str, Any] = {
        "threshold": threshold,
        "category_threshold": detector.category_threshold,
        "scoring_seconds": round(seconds, 1),
        "all": part(main),
        "english": part([i for i in main if test[i].lang == "en"]),
        "prompts": part([i for i in main if test[i].role == "user"]),
        "responses": part([i for i in main if test[i].role == "assistant"]),
    }
    sensitive = [i for i in main if test[i].group in OVER_REFUSAL_GROUPS]
    by_sensitive_group: dict[str, list[int]] = defaultdict(list)
    for i in sensitive:
        by_sensitive_group[test[i].group].append(i)
    result["over_refusal"] = {
        "examples": len(sensitive),
        "flagged": _round(sum(scores[i] >= threshold for i in sensitive) / len(sensitive)) if sensitive else None,
        "groups": {g: _round(sum(scores[i] >= threshold for i in idx) / len(idx))
                   for g, idx in sorted(by_sensitive_group.items())},
    }
    coded = [i for i in main if test[i].unsafe and test[i].categories and verdicts[i].decision != "allow"]
    result["codes_per_flagged"] = _round(sum(len(verdicts[i].labels) for i in coded) / len(coded)) if coded else None
    result["categories"] = {}
    for code in CATEGORIES:
        idx = [i for i in main if code in test[i].categories]
        given = [i for i in coded if code in verdicts[i].labels]
        if idx or given:
            result["categories"][code] = {
                "examples": len(idx),
                "recall": _round(sum(scores[i] >= threshold for i in idx) / len(idx)) if idx else None,
                "labelled": _round(sum(verdicts[i].decision != "allow" and code in verdicts[i].labels
                                       for i in idx) / len(idx)) if idx else None,
                "given": len(given),
                "agreement": _round(sum(code in test[i].categories for i in given) / len(given)) if given else None,
            }
    weak = [i for i, e in enumerate(test) if is_weak_label(e)]
    result["weak_label"] = {
        "examples": len(weak),
        "flagged": _round(sum(scores[i] >= threshold for i in weak) / len(weak)) if weak else None,
    }
    safe_scores = [scores[i] for i in main if not test[i].unsafe]
    groups: dict[str, list[int]] = defaultdict(list)
    for i in main:
        groups[test[i].group].append(i)
    rows = {}
    for group, idx in sorted(groups.items()):
        unsafe = [scores[i] for i in idx if test[i].unsafe]
        safe = [scores[i] for i in idx if not test[i].unsafe]
        row: dict[str, Any] = {"safe": len(safe), "unsafe": len(unsafe),
                               "median_score": round(statistics.median(scores[i] for i in idx), 4)}
        if unsafe:
            row["recall"] = _round(sum(s >= threshold for s in unsafe) / len(unsafe))
            row["auprc_vs_all_safe"] = _round(average_precision([1] * len(unsafe) + [0] * len(safe_scores),
                                                                unsafe + safe_scores))
        if safe:
            row["flagged_safe"] = _round(sum(s >= threshold for s in safe) / len(safe))
        rows[group] = row
    result["groups"] = rows
    return result


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """The figures as the model card's tables."""
    lines = [
        f"Threshold (from the validation slice): **{result['threshold']}**; category threshold "
        f"{result['category_threshold']}. Held-out sources only (none was trained on); weak-label rows are left out.",
        "",
        "| held-out set | safe | unsafe | AUPRC | ROC AUC | precision | recall | F1 | FPR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, title in (("all", "all held-out sources"), ("english", "English only"),
                       ("prompts", "prompts (user turns)"), ("responses", "agent responses")):
        r = result[key]
        lines.append(f"| {title} | {r['safe']} | {r['unsafe']} | {_num(r['auprc'], 4)} | {_num(r['roc_auc'], 4)} | "
                     f"{_num(r['precision'])} | {_num(r['recall'])} | {_num(r['f1'])} | {_num(r['fpr'])} |")
    over = result["over_refusal"]
    per_source = ", ".join(f"{g.removeprefix('safe_sensitive_prompts/')} {_num(v)}" for g, v in over["groups"].items())
    lines += [
        "",
        f"Over-refusal: **{_num(over['flagged'])}** of {over['examples']} held-out safe questions on sensitive "
        f"topics (medicine, history, crime, weapons, finance) are flagged ({per_source}).",
        "",
        "Recall per hazard category (held-out unsafe examples with that code): flagged unsafe, and flagged with the "
        "code among the labels. Then how often the code is given to a flagged unsafe text that has source codes, "
        "and the share of those where the source has it too (a lower bound on precision: a source gives one or two "
        "codes where several can apply). Flagged unsafe texts get "
        f"{_num(result['codes_per_flagged'], 1)} codes on average.",
        "",
        "| category | n | recall | with the code | given | agrees with the source |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for code, row in result["categories"].items():
        lines.append(f"| {code} | {row['examples']} | {_num(row['recall'])} | {_num(row['labelled'])} | "
                     f"{row['given']} | {_num(row['agreement'])} |")
    weak = result["weak_label"]
    lines += [
        "",
        f"Weak-label rows (personalised advice, campaigning: unsafe only under a stricter policy): {weak['examples']}, "
        f"flagged {_num(weak['flagged'])}.",
        "",
        "Per held-out source:",
        "",
        "| source | safe | unsafe | recall | AUPRC vs all held-out safe | safe flagged | median score |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for group, row in result["groups"].items():
        lines.append(f"| {group} | {row['safe']} | {row['unsafe']} | {_num(row.get('recall'))} | "
                     f"{_num(row.get('auprc_vs_all_safe'), 4)} | {_num(row.get('flagged_safe'))} | "
                     f"{row['median_score']:.3f} |")
    return "\n".join(lines)


def write_card(card: Path, text: str) -> None:
    """Put `text` between the content markers of `card`; add the section (or the file) when it has none."""
    body = card.read_text(encoding="utf-8") if card.is_file() else ""
    if CARD_START in body and CARD_END in body:
        start, end = body.index(CARD_START) + len(CARD_START), body.index(CARD_END)
        body = body[:start] + "\n" + text + "\n" + body[end:]
    else:
        body = body.rstrip() + ("\n\n" if body.strip() else "") + f"{CARD_TITLE}\n\n{CARD_START}\n{text}\n{CARD_END}\n"
    card.write_text(body, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m purple.content.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--model", type=Path, default=CONTENT_MODEL_DIR)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--write-card", action="store_true", help="update MODEL_CARD.md beside the model")
    args = parser.parse_args(argv)

    try:
        detector = ContentClassifier(args.model)
        parts = split(load_corpus(args.data), seed=args.seed)
        result = evaluate(detector, parts.test)
    except (RuntimeError, ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
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
