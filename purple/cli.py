"""The `purple` command line. Thin: parse, call the library, print, choose the exit code.

Exit codes: 0 ok, 1 policy failure (a --fail-on threshold was met), 2 usage or infrastructure error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from purple import __version__

EXIT_OK, EXIT_POLICY, EXIT_ERROR = 0, 1, 2


def _warn(message: str) -> None:
    click.echo(f"purple: warning: {message}", err=True)


def _error(message: str) -> None:
    click.echo(f"purple: error: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="purple")
def cli() -> None:
    """Purple: safety and evaluation for LLM applications.

    Exit codes: 0 ok, 1 policy failure (a --fail-on threshold was met), 2 usage or infrastructure error.
    """


# --------------------------------------------------------------------------------------------------- scan
_STDIN_LIMIT = 2_000_000


def _read_stdin(max_bytes: int) -> tuple[str, str | None]:
    data = sys.stdin.buffer.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise click.UsageError(f"standard input is larger than the {max_bytes:,}-byte limit (--max-file-size)")
    if b"\x00" in data[:8192]:
        raise click.UsageError("standard input looks binary (NUL bytes); nothing scanned")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        note = f"stdin: not valid UTF-8 (first bad byte at offset {exc.start}); scanned with replacement characters"
        return data.decode("utf-8", errors="replace"), note


def _text_report(results: Sequence[Any], treatment_of: dict[Any, Any], semgrep_on: bool) -> str:
    """One line per finding (path:line:col: severity CWE [rule] message), its code, then a summary."""
    lines: list[str] = []
    counts = {"block": 0, "warn": 0, "ignore": 0}
    files_with_findings = 0
    for result in results:
        files_with_findings += bool(result.findings)
        for finding in result.findings:
            counts[str(treatment_of[finding.severity])] += 1
            where = f"{finding.path or 'stdin'}:{finding.line}:{finding.column}"
            lines.append(f"{where}: {finding.severity} {finding.cwe} [{finding.rule_id}] {finding.message}")
            lines.append(f"    {finding.snippet}")
    tiers = "regex + semgrep" if semgrep_on else "regex only (semgrep off)"
    lines.append(
        f"{sum(counts.values())} finding(s) in {files_with_findings} of {len(results)} file(s): "
        f"{counts['block']} block, {counts['warn']} warn, {counts['ignore']} ignore; tiers: {tiers}"
    )
    return "\n".join(lines)


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH... | -")
@click.option("-l", "--language", help="Language of the input (default: from file extension, else detected).")
@click.option(
    "-f", "--format", "output_format", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report here.")
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "block", "never"]),
    default="block",
    show_default=True,
    help="Exit 1 when a finding's treatment is at least this.",
)
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(), help="Extra rules folder (same id replaces).")
@click.option("--no-builtin-rules", is_flag=True, help="Use only the --rules folders.")
@click.option("--no-semgrep", is_flag=True, help="Regex tier only.")
@click.option("--semgrep-timeout", type=float, default=300.0, show_default=True, help="Seconds per semgrep run.")
@click.option("--max-file-size", type=int, default=2_000_000, show_default=True, help="Bytes; larger files are skipped.")
@click.option(
    "--treat",
    multiple=True,
    metavar="SEVERITY=TREATMENT",
    help="Override a treatment, e.g. --treat warning=block or --treat advice=warn.",
)
def scan(
    paths: tuple[str, ...],
    language: str | None,
    output_format: str,
    output: str | None,
    fail_on: str,
    rule_dirs: tuple[str, ...],
    no_builtin_rules: bool,
    no_semgrep: bool,
    semgrep_timeout: float,
    max_file_size: int,
    treat: tuple[str, ...],
) -> None:
    """Scan code for insecure patterns: files, folders (honouring .gitignore) or - for standard input."""
    from purple.codeshield.languages import normalize_language
    from purple.codeshield.scanner import CodeItem, CodeShield, PathScan, Treatment, scan_paths
    from purple.report.sarif import findings_to_sarif

    if language:
        try:
            language = normalize_language(language)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--language") from None
    treatment: dict[str, str] = {}
    for item in treat:
        severity, _, value = item.partition("=")
        if severity not in {"error", "warning", "advice"} or value not in {"block", "warn", "ignore"}:
            raise click.BadParameter(f"{item!r}: expected SEVERITY=TREATMENT, e.g. warning=block", param_hint="--treat")
        treatment[severity] = value
    if no_builtin_rules and not rule_dirs:
        raise click.UsageError("--no-builtin-rules needs at least one --rules folder")

    shield = CodeShield(
        rule_dirs=rule_dirs,
        include_builtin_rules=not no_builtin_rules,
        semgrep=not no_semgrep,
        treatment=treatment,
        semgrep_timeout_s=semgrep_timeout,
    )
    rule_errors = list(shield.ruleset.errors)
    for message in rule_errors:
        _error(message)
    if not no_semgrep and not shield.semgrep.available:
        _warn("semgrep tier off: semgrep is not installed (pip install 'purple[semgrep]'); regex tier only")

    outcome = PathScan()
    file_paths = [p for p in paths if p != "-"]
    if "-" in paths:
        text, note = _read_stdin(max_file_size)
        if note:
            outcome.file_notes.append(note)
        result = shield.scan_many([CodeItem(text, language, None)])[0]
        outcome.results.append(result)
        outcome.run_notes.extend(result.notes)
    if file_paths:
        from tqdm import tqdm

        with tqdm(unit="file", desc="scanning", disable=not sys.stderr.isatty(), leave=False) as bar:
            found = scan_paths(shield, file_paths, language, max_file_size, progress=bar.update)
        outcome.results.extend(found.results)
        outcome.skipped.extend(found.skipped)
        outcome.file_notes.extend(found.file_notes)
        outcome.run_notes.extend(n for n in found.run_notes if n not in outcome.run_notes)

    for skipped in outcome.skipped:
        if skipped.error:
            _error(f"{skipped.path}: {skipped.reason}")
    for note in [*outcome.file_notes, *outcome.run_notes]:
        _warn(note)

    findings = outcome.findings
    if output_format == "sarif":
        notes = [*rule_errors, *outcome.file_notes, *outcome.run_notes]
        notes += [f"{s.path}: {s.reason}" for s in outcome.skipped if s.error]
        rendered = json.dumps(findings_to_sarif(findings, notifications=notes), indent=2)
    elif output_format == "json":
        rendered = json.dumps(
            {
                "version": __version__,
                "semgrep": shield.semgrep.available,
                "files_scanned": len(outcome.results),
                "results": [
                    {
                        "path": r.path or "stdin",
                        "language": r.language,
                        "treatment": str(r.treatment),
                        "findings": [f.to_dict() for f in r.findings],
                    }
                    for r in outcome.results
                    if r.findings
                ],
                "skipped": [{"path": s.path, "reason": s.reason, "error": s.error} for s in outcome.skipped],
                "errors": rule_errors + [f"{s.path}: {s.reason}" for s in outcome.errors],
                "notes": outcome.file_notes + outcome.run_notes,
            },
            indent=2,
        )
    else:
        rendered = _text_report(outcome.results, shield.treatment, shield.semgrep.available)
    if output:
        Path(output).write_text(rendered + "\n", encoding="utf-8")
    else:
        click.echo(rendered)

    if rule_errors or outcome.errors:
        sys.exit(EXIT_ERROR)
    worst = max((r.treatment for r in outcome.results), key=lambda t: t.rank, default=Treatment.IGNORE)
    if fail_on != "never" and worst.rank >= Treatment(fail_on).rank:
        sys.exit(EXIT_POLICY)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: any unexpected failure is one readable line and exit code 2, never a traceback."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="purple", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a CLI
        _error(f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
