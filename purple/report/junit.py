"""JUnit XML for CI: one test case per threshold check and one per category of each benchmark."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from purple.report.thresholds import Check

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold at all, escaped or not (ElementTree writes them as they are)."""


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def to_junit(stats: dict[str, Any], checks: Sequence[Check]) -> str:
    suites = ET.Element("testsuites", name="purple eval")
    gate = ET.SubElement(suites, "testsuite", name="thresholds")
    for check in checks:
        case = ET.SubElement(gate, "testcase", classname=f"thresholds.{check.benchmark}", name=f"{check.name} [{check.model}]")
        if not check.passed:
            ET.SubElement(case, "failure", message=check.detail).text = check.detail
    gate.set("tests", str(len(checks)))
    gate.set("failures", str(sum(not c.passed for c in checks)))
    for bench, models in stats.items():
        suite = ET.SubElement(suites, "testsuite", name=bench)
        count = failures = 0
        for model, entry in models.items():
            for group, rows in entry["categories"].items():
                for row in rows:
                    count += 1
                    case = ET.SubElement(suite, "testcase", classname=f"{bench}.{group}",
                                         name=f"{group}={row['category']} [{model}]")
                    values = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != "category")
                    ET.SubElement(case, "system-out").text = values
                    if row["errors"]:
                        failures += 1
                        ET.SubElement(case, "failure", message=f"{row['errors']} record(s) failed").text = values
        suite.set("tests", str(count))
        suite.set("failures", str(failures))
    suites.set("tests", str(sum(int(s.get("tests", "0")) for s in suites)))
    suites.set("failures", str(sum(int(s.get("failures", "0")) for s in suites)))
    ET.indent(suites)
    text = ET.tostring(suites, encoding="unicode")
    # names and values come from datasets and model specs: shown as \xNN instead of making the file unreadable
    text = _NOT_XML.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"
