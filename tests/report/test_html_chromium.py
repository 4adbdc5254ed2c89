"""The HTML report in real headless Chromium: it renders, and a hostile model output does not run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from purple.report.html import render_html
from purple.report.thresholds import Check

PAYLOAD = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _report() -> str:
    stats = {"frr": {"hf:tiny": {"count": 1, "errors": 0, "metrics": {"refusal_rate": 1.0},
                                 "categories": {"attack_type": [{"category": PAYLOAD, "count": 1, "errors": 0,
                                                                 "refusal_rate": 1.0}]}}}}
    records = [{"benchmark": "frr", "model": "hf:tiny", "sample_id": "1", "prompt": [{"role": "user", "content": PAYLOAD}],
                "response": PAYLOAD, "scores": {"refusal_rate": 1.0}, "judge_output": PAYLOAD, "error": None}]
    checks = [Check("frr.refusal_rate>0.5", "frr", "hf:tiny", False, "refusal_rate = 1")]
    return render_html(stats, records, {"models": ["hf:tiny"], "judge": PAYLOAD}, checks, None)


def test_payload_is_escaped_in_markup() -> None:
    html = _report()
    assert "<img src=x" not in html and "<script>document" not in html
    assert "&lt;img src=x onerror=" in html
    assert "<svg" in html and 'id="verdict"' in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it)")
def test_chromium_renders_and_payload_does_not_run(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(_report(), encoding="utf-8")
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    dom = done.stdout
    assert "<title>Purple eval report</title>" in dom, done.stderr[-2000:]
    assert "pwned" not in dom.split("<body", 1)[0]  # the title was not rewritten by the payload
    assert 'id="verdict"' in dom and "FAIL" in dom
    assert "<img" not in dom  # escaped text, not an element
