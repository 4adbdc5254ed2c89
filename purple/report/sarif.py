"""SARIF 2.1.0 for code findings, as GitHub code scanning reads it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from purple import __version__
from purple.types import Finding, Severity

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.ADVICE: "note"}
_SECURITY_SEVERITY = {Severity.ERROR: "8.0", Severity.WARNING: "5.5", Severity.ADVICE: "2.0"}


def artifact_uri(path: str | None) -> str:
    """A relative, percent-encoded URI with forward slashes (what code scanning matches to repository files)."""
    if not path or path == "-":
        return "stdin"
    posix = PurePath(path).as_posix()
    while posix.startswith("./"):
        posix = posix[2:]
    return quote(posix.lstrip("/"), safe="/")


def _fingerprint(finding: Finding) -> str:
    digest = hashlib.sha256(f"{finding.rule_id}\0{finding.snippet.strip()}".encode()).hexdigest()
    return f"{digest[:32]}:1"


def _rule_descriptor(finding: Finding) -> dict[str, Any]:
    cwe_number = finding.cwe.split("-", 1)[1]
    return {
        "id": finding.rule_id,
        "name": finding.rule_id.replace(".", "/"),
        "shortDescription": {"text": f"{finding.cwe}: {finding.rule_id}"},
        "fullDescription": {"text": finding.message},
        "help": {"text": finding.message},
        "defaultConfiguration": {"level": _LEVEL[finding.severity]},
        "helpUri": f"https://cwe.mitre.org/data/definitions/{cwe_number}.html",
        "properties": {
            "tags": ["security", finding.cwe, f"external/cwe/cwe-{cwe_number}"],
            "security-severity": _SECURITY_SEVERITY[finding.severity],
            "precision": "high" if finding.severity is Severity.ERROR else "medium",
        },
    }


def findings_to_sarif(
    findings: Sequence[Finding],
    notifications: Sequence[str] = (),
    tool_name: str = "Purple Code Shield",
    extra_properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One SARIF log with one run; rules are described from the findings that cite them."""
    rules: dict[str, dict[str, Any]] = {}
    for finding in findings:
        rules.setdefault(finding.rule_id, _rule_descriptor(finding))
    order = {rule_id: index for index, rule_id in enumerate(rules)}
    results = []
    for finding in findings:
        region: dict[str, Any] = {
            "startLine": max(1, finding.line),
            "startColumn": max(1, finding.column),
            "endLine": max(finding.line, finding.end_line or finding.line),
            "snippet": {"text": finding.snippet},
        }
        results.append(
            {
                "ruleId": finding.rule_id,
                "ruleIndex": order[finding.rule_id],
                "level": _LEVEL[finding.severity],
                "message": {"text": f"{finding.message} ({finding.cwe})"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": artifact_uri(finding.path), "uriBaseId": "%SRCROOT%"},
                            "region": region,
                        }
                    }
                ],
                "partialFingerprints": {"primaryLocationLineHash": _fingerprint(finding)},
                "properties": {"cwe": finding.cwe, "tier": finding.tier, "language": finding.language},
            }
        )
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": tool_name,
                "semanticVersion": __version__.split("+")[0],
                "rules": list(rules.values()),
            }
        },
        "results": results,
        "invocations": [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": [
                    {"level": "warning", "message": {"text": text}} for text in notifications
                ],
            }
        ],
        "columnKind": "unicodeCodePoints",
    }
    if extra_properties:
        run["properties"] = dict(extra_properties)
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
