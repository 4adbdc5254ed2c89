"""One self-contained HTML report per run: jinja2 with autoescape, inline CSS and SVG, nothing from the network.

Model outputs are hostile: every value goes through autoescaping, and a Content-Security-Policy forbids scripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from purple.report.thresholds import Check

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_EXAMPLES = 12
MAX_TEXT = 3000
BAR_WIDTH = 360


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _bars(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Geometry of one horizontal bar chart (values as drawn, scaled to the largest)."""
    values = [(str(r["category"]), r.get(metric)) for r in rows if r.get(metric) is not None]
    top = max((v for _, v in values), default=0.0) or 1.0
    if metric.endswith("_rate"):
        top = max(top, 1.0)
    bars = [{"label": label[:40], "value": value, "width": round(BAR_WIDTH * value / top, 1), "y": 22 * i}
            for i, (label, value) in enumerate(values)]
    return {"metric": metric, "bars": bars, "height": 22 * len(bars) + 4}


def _failing_examples(records: Sequence[dict[str, Any]], bench: str) -> list[dict[str, Any]]:
    """Records of `bench` that failed to run, or where a rate flagged them (vulnerable, refused, injected...)."""
    examples = []
    for record in records:
        if record.get("benchmark") != bench:
            continue
        flagged = [k for k, v in (record.get("scores") or {}).items() if k.endswith("_rate") and v >= 1.0]
        if not flagged and not record.get("error"):
            continue
        prompt = "\n\n".join(f"[{m.get('role')}] {m.get('content')}" for m in record.get("prompt") or [])
        examples.append({
            "model": record.get("model"), "sample_id": record.get("sample_id"),
            "why": record.get("error") or ", ".join(flagged),
            "prompt": prompt[:MAX_TEXT], "response": str(record.get("response", ""))[:MAX_TEXT],
            "judge_output": str(record.get("judge_output", ""))[:MAX_TEXT],
        })
        if len(examples) >= MAX_EXAMPLES:
            break
    return examples


def render_html(stats: dict[str, Any], records: Sequence[dict[str, Any]], manifest: dict[str, Any],
                checks: Sequence[Check], deltas: dict[str, Any] | None, thresholds: Sequence[str] = (),
                tolerance: float = 0.0) -> str:
    """The report page. `thresholds`: the --fail-on expressions checked; `tolerance`: the regression tolerance."""
    sections = []
    for bench, models in stats.items():
        model_sections = []
        for model, entry in models.items():
            groups = []
            for group, rows in entry["categories"].items():
                metrics = [k for k in rows[0] if k not in ("category", "count", "errors")] if rows else []
                groups.append({"name": group, "rows": rows, "metrics": metrics,
                               "charts": [_bars(rows, m) for m in metrics]})
            model_sections.append({"model": model, "entry": entry, "groups": groups,
                                   "deltas": (deltas or {}).get(bench, {}).get(model, {})})
        sections.append({"name": bench, "models": model_sections, "examples": _failing_examples(records, bench)})
    passed = all(c.passed for c in checks)
    return _environment().get_template("run.html.j2").render(
        sections=sections, manifest=manifest, checks=checks, passed=passed, has_baseline=deltas is not None,
        thresholds=list(thresholds), tolerance=tolerance,
    )
