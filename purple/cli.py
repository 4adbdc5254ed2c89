"""The `purple` command line. Thin: parse, call the library, print, choose the exit code.

Exit codes: 0 ok, 1 policy failure (a --fail-on threshold was met), 2 usage or infrastructure error.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click

from purple import __version__

EXIT_OK, EXIT_POLICY, EXIT_ERROR = 0, 1, 2
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a command stopped by SIGPIPE: the reader of standard output went away (`| head`)."""


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange without NaN, which passes its bounds (every comparison with NaN is false)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail("nan is not a number", param, ctx)
        return number


_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _printable(text: str) -> str:
    """`text` safe to print on one terminal line: control characters (escape sequences, newlines) and
    bidirectional overrides written as \\xNN / \\uNNNN, so scanned code or a file name cannot rewrite or hide
    what is shown."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def _warn(message: str) -> None:
    click.echo(f"purple: warning: {_printable(message)}", err=True)


def _error(message: str) -> None:
    click.echo(f"purple: error: {_printable(message)}", err=True)


def _write_failed(exc: OSError, output: str | None) -> NoReturn:
    """A write of results failed: one line and exit 2; a closed pipe on standard output (`purple detect ... | head`)
    ends the command quietly with 141, as SIGPIPE would (click would say 1, the policy-failure code)."""
    if exc.errno == errno.EPIPE and not output:
        try:  # nothing more can reach the reader; keep Python's exit-time flush from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        sys.exit(EXIT_BROKEN_PIPE)
    _error(f"cannot write {output or 'standard output'}: {exc.strerror or exc}")
    sys.exit(EXIT_ERROR)


class _Sink:
    """Where a command writes its results, line by line: --output or standard output; see _write_failed."""

    def __init__(self, output: str | None) -> None:
        self.output = output
        try:
            self.handle: TextIO = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        except OSError as exc:
            _write_failed(exc, output)

    def write(self, text: str) -> None:
        try:
            self.handle.write(text)
        except OSError as exc:
            _write_failed(exc, self.output)

    def flush(self) -> None:
        try:
            self.handle.flush()
        except OSError as exc:
            _write_failed(exc, self.output)

    def close(self) -> None:
        """Flush, and close a file (never standard output)."""
        self.flush()
        if self.output:
            try:
                self.handle.close()
            except OSError as exc:
                _write_failed(exc, self.output)


class _LineErrors:
    """The per-line errors of detect and guard on standard error: each distinct error for its first SHOWN lines,
    then one count at the end (an unreachable server fails every line the same way); the rows keep every error."""

    SHOWN = 3

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def add(self, where: str, error: str) -> None:
        self.seen[error] = self.seen.get(error, 0) + 1
        if self.seen[error] <= self.SHOWN:
            _error(f"{where}: {error}")

    def summarize(self) -> int:
        """Print the counts of what was not shown; return how many lines failed."""
        for error, count in self.seen.items():
            if count > self.SHOWN:
                _error(f"{count - self.SHOWN} more line(s) with the same error: {error}")
        return sum(self.seen.values())


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


def _refuse_output_onto_input(output: str | None, inputs: Sequence[str]) -> None:
    """Usage error when --output names one of the input files: opening it for writing would wipe the input."""
    if not output or not Path(output).exists():
        return
    for given in inputs:
        if given != "-" and Path(given).is_file() and Path(given).samefile(output):
            raise click.UsageError(f"--output {output} is an input file; writing the results there would erase it")


def _text_report(results: Sequence[Any], treatment_of: dict[Any, Any], semgrep_on: bool) -> str:
    """One line per finding (path:line:col: severity CWE [rule] message), its code, then a summary."""
    lines: list[str] = []
    counts = {"block": 0, "warn": 0, "ignore": 0}
    files_with_findings = 0
    for result in results:
        files_with_findings += bool(result.findings)
        for finding in result.findings:
            counts[str(treatment_of[finding.severity])] += 1
            where = f"{_printable(finding.path or 'stdin')}:{finding.line}:{finding.column}"
            message = _printable(finding.message)
            lines.append(f"{where}: {finding.severity} {finding.cwe} [{finding.rule_id}] {message}")
            lines.append(f"    {_printable(finding.snippet)}")
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
@click.option("--semgrep-timeout", type=FiniteFloatRange(0, 86_400, min_open=True),
              default=300.0, show_default=True,
              help="Seconds per semgrep run.")
@click.option("--max-file-size", type=click.IntRange(1), default=2_000_000, show_default=True,
              help="Bytes; larger files are skipped.")
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
    from purple.codeshield.semgrep_tier import FAILURE_NOTES
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

    _refuse_output_onto_input(output, paths)
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
    sink = _Sink(output)
    sink.write(rendered + "\n")
    sink.close()

    # a semgrep run that timed out or failed, or a rule semgrep refused, leaves findings out: incomplete, not clean
    tier_failed = any(note.startswith(FAILURE_NOTES) for note in outcome.run_notes)
    if rule_errors or outcome.errors or tier_failed:
        sys.exit(EXIT_ERROR)
    worst = max((r.treatment for r in outcome.results), key=lambda t: t.rank, default=Treatment.IGNORE)
    if fail_on != "never" and worst.rank >= Treatment(fail_on).rank:
        sys.exit(EXIT_POLICY)


# -------------------------------------------------------------------------------------------------- guard
@cli.command()
@click.argument("text", required=False)
@click.option("--response", help="The assistant's reply to TEXT: classify the reply instead of the prompt.")
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False), help="Conversations as JSONL (- for stdin).")
@click.option(
    "-m", "--model", "model_spec", envvar="PURPLE_GUARD_MODEL", default="hf:meta-llama/Llama-Guard-3-1B",
    show_default=True, help="hf:PATH_OR_ID, openai:MODEL, ollama:MODEL, vllm:PATH or PROVIDER::MODEL::KEY[::URL]; "
                            "purple-content[:FOLDER] for Purple's offline classifier (no Llama Guard needed).",
)
@click.option("--version", "guard_version", help="Llama Guard version: 1, 2, 3-1b, 3-8b, 3-11b-vision, 4 (default: from the name).")
@click.option("--categories", help="Codes to keep (S1,S9,S10) or a taxonomy YAML file.")
@click.option("--exclude", help="Codes to leave out, e.g. S6,S7.")
@click.option("--threshold", type=FiniteFloatRange(0, 1),
              help="Unsafe when P(unsafe) >= this [default: 0.5; purple-content: the model's own].")
@click.option("--no-codes", is_flag=True, help="Score only: do not generate category codes for unsafe conversations.")
@click.option("--mode", type=click.Choice(["auto", "chat", "completions"]), default="auto", show_default=True,
              help="API models: chat endpoint (server's template) or raw completions (Purple's prompt).")
@click.option("--base-url", help="API base URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--api-key-env", help="Environment variable holding the API key.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), help="Local models: weight type.")
@click.option("--device", help="Local models: cpu, cuda, cuda:1 (default: a GPU when present).")
@click.option("--batch-size", type=click.IntRange(1), help="Local models: conversations per forward pass.")
@click.option("--concurrency", type=click.IntRange(1, 512), help="API models: requests in flight.")
@click.option("--timeout", "timeout_s", type=FiniteFloatRange(0, min_open=True),
              help="API models: seconds per request.")
@click.option("--top-logprobs", type=click.IntRange(1), default=20, show_default=True,
              help="API models: alternatives asked for per token (servers cap it).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the verdicts here.")
@click.option("-f", "--format", "output_format", type=click.Choice(["text", "jsonl"]),
              help="text: one line per conversation; jsonl: one verdict object per line (default for --input).")
@click.option("--fail-on", type=click.Choice(["unsafe", "never"]), default="unsafe", show_default=True,
              help="Exit 1 when a conversation is unsafe.")
def guard(
    text: str | None,
    response: str | None,
    input_path: str | None,
    model_spec: str,
    guard_version: str | None,
    categories: str | None,
    exclude: str | None,
    threshold: float | None,
    no_codes: bool,
    mode: str,
    base_url: str | None,
    api_key_env: str | None,
    dtype: str | None,
    device: str | None,
    batch_size: int | None,
    concurrency: int | None,
    timeout_s: float | None,
    top_logprobs: int,
    output: str | None,
    output_format: str | None,
    fail_on: str,
) -> None:
    """Classify conversations with Llama Guard: TEXT (a user prompt, with --response its reply) or --input JSONL.

    --model purple-content uses Purple's offline content classifier instead (same verdicts: P(unsafe), S-codes).
    """
    from purple.content.detector import ContentClassifier, content_model_folder
    from purple.conversations import ConversationRecord, read_jsonl
    from purple.llamaguard import load_guard
    from purple.llamaguard.taxonomy import TaxonomyError, parse_code_list
    from purple.models import ModelError
    from purple.types import Message

    if (text is None) == (input_path is None):
        raise click.UsageError("give either TEXT or --input FILE")
    if response is not None and input_path is not None:
        raise click.UsageError("--response goes with TEXT, not --input")
    _refuse_output_onto_input(output, [input_path] if input_path else [])
    output_format = output_format or ("jsonl" if input_path else "text")
    taxonomy = keep = None
    if categories:
        if Path(categories).suffix in {".yaml", ".yml"} or Path(categories).is_file():
            taxonomy = categories
        else:
            keep = parse_code_list(categories)
    options = {
        "dtype": dtype, "device": device, "batch_size": batch_size, "base_url": base_url,
        "api_key_env": api_key_env, "concurrency": concurrency, "timeout_s": timeout_s,
    }
    offline_folder = content_model_folder(model_spec)
    try:
        if offline_folder is not None:
            given = {"--version": guard_version, "--no-codes": no_codes, "--mode": mode != "auto", "--dtype": dtype,
                     "--device": device, "--batch-size": batch_size, "--base-url": base_url,
                     "--api-key-env": api_key_env, "--concurrency": concurrency, "--timeout": timeout_s}
            llama_guard_only = [flag for flag, value in given.items() if value not in (None, False)]
            if llama_guard_only:
                raise click.UsageError(f"{', '.join(llama_guard_only)}: Llama Guard options; "
                                       f"{model_spec} is Purple's offline classifier")
            detector: Any = ContentClassifier(offline_folder, taxonomy=taxonomy, categories=keep,
                                              exclude=parse_code_list(exclude or ""), threshold=threshold)
        else:
            detector = load_guard(
                model_spec, version=guard_version, taxonomy=taxonomy, categories=keep,
                exclude=parse_code_list(exclude or ""), threshold=0.5 if threshold is None else threshold,
                codes=not no_codes, mode=mode, top_logprobs=top_logprobs,
                **{k: v for k, v in options.items() if v is not None},
            )
    except (ModelError, TaxonomyError, RuntimeError, ValueError) as exc:
        _error(str(exc))
        sys.exit(EXIT_ERROR)

    if input_path is None:
        turns = [Message("user", text or "")] + ([Message("assistant", response)] if response is not None else [])
        records = iter([ConversationRecord(1, None, tuple(turns))])
    elif input_path == "-":
        records = read_jsonl(sys.stdin.buffer)
    else:
        try:
            records = read_jsonl(open(input_path, "rb"))  # noqa: SIM115 - closed when the process ends
        except OSError as exc:
            _error(f"cannot read {input_path}: {exc.strerror}")
            sys.exit(EXIT_ERROR)

    sink = _Sink(output)
    errors = _LineErrors()
    unsafe = 0
    for chunk in _chunks(records, 64):
        good = [r for r in chunk if r.error is None]
        verdicts = iter(detector.check_many([list(r.messages) for r in good]))
        for record in chunk:
            if record.error is not None:
                errors.add(f"{input_path}:{record.line}", record.error)
                row = {"line": record.line, "id": record.id, "decision": None, "error": record.error}
            else:
                verdict = next(verdicts)
                row = {"line": record.line, "id": record.id, **verdict.to_dict()}
                row.pop("findings", None)
                if verdict.error:  # not classified: no decision to report, as for an unreadable line
                    errors.add(f"{input_path or 'input'}:{record.line}", verdict.error)
                    row["decision"] = None
                unsafe += verdict.decision == "block"
            if record.id is None:
                row.pop("id")
            if output_format == "jsonl":
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                sink.write(_guard_line(row, input_path is not None) + "\n")
        sink.flush()
    sink.close()
    detector.close()
    if errors.summarize():
        sys.exit(EXIT_ERROR)
    if unsafe and fail_on == "unsafe":
        sys.exit(EXIT_POLICY)


# ------------------------------------------------------------------------------------------------- detect
@cli.command()
@click.argument("text", required=False)
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False),
              help="JSONL, one item a line: {\"text\": ...}, {\"prompt\": ...} or {\"messages\": [...]} (- for stdin).")
@click.option("-m", "--model", "model_path", envvar="PURPLE_INJECTION_MODEL",
              help="A classifier folder or a Prompt Guard id in the Hugging Face cache "
                   "(default: Purple's shipped offline model).")
@click.option("--version", "pg_version", type=click.Choice(["1", "2"]),
              help="Prompt Guard version of --model (default: from its classes).")
@click.option("--role", type=click.Choice(["user", "tool"]),
              help="Score as user text or third-party text (tool output, documents). Default: TEXT is user text; "
                   "--input items by the role of their last message.")
@click.option("--threshold", type=FiniteFloatRange(0, 1),
              help="Flag at or above this score (default: the model's).")
@click.option("--temperature", type=FiniteFloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Softmax temperature applied to the logits.")
@click.option("--no-normalize", is_flag=True, help="Score the raw text: do not undo evasions first.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True,
              help="Full-length windows per forward pass (short ones are packed more densely).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the verdicts here.")
@click.option("-f", "--format", "output_format", type=click.Choice(["text", "jsonl"]),
              help="text: one line per item; jsonl: one verdict object per line (default for --input).")
@click.option("--fail-on", type=click.Choice(["flagged", "never"]), default="flagged", show_default=True,
              help="Exit 1 when an item is flagged.")
def detect(
    text: str | None,
    input_path: str | None,
    model_path: str | None,
    pg_version: str | None,
    role: str | None,
    threshold: float | None,
    temperature: float,
    no_normalize: bool,
    batch_size: int,
    output: str | None,
    output_format: str | None,
    fail_on: str,
) -> None:
    """Detect prompt injections and jailbreaks in TEXT or in --input JSONL, offline.

    The default model ships with Purple; --model takes Prompt Guard 1 or 2 (a local folder or the Hugging Face cache).
    """
    from purple.conversations import ConversationRecord, read_jsonl
    from purple.promptguard import PromptGuard, PromptGuardError, load_detector
    from purple.promptguard.detector import MODEL_DIR, THIRD_PARTY_ROLES
    from purple.types import Message

    if (text is None) == (input_path is None):
        raise click.UsageError("give either TEXT or --input FILE")
    _refuse_output_onto_input(output, [input_path] if input_path else [])
    output_format = output_format or ("jsonl" if input_path else "text")
    options: dict[str, Any] = {"temperature": temperature, "batch_size": batch_size, "normalize": not no_normalize}
    if threshold is not None:
        options["threshold"] = threshold
    try:
        if pg_version is not None:
            if model_path is None:
                raise click.UsageError("--version goes with --model (a Prompt Guard folder or id)")
            detector = PromptGuard.from_pretrained(model_path, version=int(pg_version), **options)
        else:
            detector = load_detector(model_path or MODEL_DIR, **options)
    except (PromptGuardError, ValueError) as exc:
        _error(str(exc))
        sys.exit(EXIT_ERROR)

    if input_path is None:
        records = iter([ConversationRecord(1, None, (Message("user", text or ""),))])
    elif input_path == "-":
        records = read_jsonl(sys.stdin.buffer)
    else:
        try:
            records = read_jsonl(open(input_path, "rb"))  # noqa: SIM115 - closed when the process ends
        except OSError as exc:
            _error(f"cannot read {input_path}: {exc.strerror}")
            sys.exit(EXIT_ERROR)

    sink = _Sink(output)
    errors = _LineErrors()
    flagged = 0
    for chunk in _chunks(records, 64):
        good = [r for r in chunk if r.error is None]
        roles = [role or ("tool" if r.messages[-1].role in THIRD_PARTY_ROLES else "user") for r in good]
        details = iter(detector.score_details([r.messages[-1].content for r in good], roles))
        role_of = iter(roles)
        for record in chunk:
            if record.error is not None:
                errors.add(f"{input_path}:{record.line}", record.error)
                row: dict[str, Any] = {"line": record.line, "id": record.id, "decision": None, "error": record.error}
            else:
                item_role = next(role_of)
                verdict = detector.verdict_for(next(details), item_role)
                row = {"line": record.line, "id": record.id, "role": item_role, **verdict.to_dict()}
                row.pop("findings", None)
                if verdict.error:  # not classified: no decision to report, as for an unreadable line
                    errors.add(f"{input_path or 'input'}:{record.line}", verdict.error)
                    row["decision"] = None
                flagged += verdict.decision == "block"
            if record.id is None:
                row.pop("id")
            if output_format == "jsonl":
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                sink.write(_detect_line(row, input_path is not None) + "\n")
        sink.flush()
    sink.close()
    if errors.summarize():
        sys.exit(EXIT_ERROR)
    if flagged and fail_on == "flagged":
        sys.exit(EXIT_POLICY)


def _detect_line(row: dict[str, Any], numbered: bool) -> str:
    where = f"{row['line']}: " if numbered else ""
    if row.get("error"):
        return f"{where}error: {row['error']}"
    if row["decision"] == "block":
        verdict = ",".join(row.get("labels") or ["injection"])
    elif row["decision"] == "human_review":
        verdict = "review"
    else:
        verdict = "benign"
    note = ""
    if "evasions undone:" in row.get("reason", ""):
        note = " [" + row["reason"].split("evasions undone:", 1)[1].strip() + "]"
    return f"{where}{verdict} (score={row['score']:.3f}, {row['role']}){note}"


def _chunks(items: Any, size: int) -> Any:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _guard_line(row: dict[str, Any], numbered: bool) -> str:
    where = f"{row['line']}: " if numbered else ""
    if row.get("error"):
        return f"{where}error: {row['error']}"
    verdict = "unsafe" if row["decision"] == "block" else "safe"
    labels = f" {','.join(row['labels'])}" if row.get("labels") else ""
    return f"{where}{verdict}{labels} (P(unsafe)={row['score']:.3f})"


# -------------------------------------------------------------------------------------------------- serve
@cli.command()
@click.option("--upstream", required=True, metavar="URL", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--policy", "policy_source", default="chatbot", show_default=True, metavar="FILE|PRESET",
              help="A YAML policy file or a preset: chatbot, coding, agent.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free one).")
@click.option("--audit-log", type=click.Path(dir_okay=False), default="purple-audit.jsonl", show_default=True,
              help="Append-only JSONL record of every decision (fsynced before each answer).")
@click.option("--timeout", "timeout_s", type=FiniteFloatRange(0, min_open=True),
              default=120.0, show_default=True,
              help="Seconds to wait for the upstream.")
@click.option("--max-body-bytes", type=click.IntRange(1), default=4_000_000, show_default=True,
              help="Largest request body accepted.")
@click.option("--scan-history", is_flag=True,
              help="Scan every message of each request, not only the newest turn (for apps that forward "
                   "histories their users can write).")
def serve(
    upstream: str, policy_source: str, host: str, port: int, audit_log: str, timeout_s: float, max_body_bytes: int,
    scan_history: bool,
) -> None:
    """Run the firewall as an OpenAI-compatible proxy in front of UPSTREAM (/v1/chat/completions, /v1/models,
    /health). Clients keep their own API key: it is passed to the upstream and never logged.
    """
    try:
        from purple.firewall.proxy import ProxyError, check_upstream, serve as run_proxy
    except ImportError as exc:
        _error(f"purple serve needs the serve extra (pip install 'purple[serve]'): {exc}")
        sys.exit(EXIT_ERROR)
    from purple.firewall import Firewall, PolicyError, load_policy
    from purple.firewall.audit import AuditLog

    try:
        upstream = check_upstream(upstream)
        firewall = Firewall(load_policy(policy_source))
    except (ProxyError, PolicyError) as exc:
        _error(str(exc))
        sys.exit(EXIT_ERROR)
    for note in firewall.notes:
        _warn(note)
    try:
        audit = AuditLog(audit_log)
    except OSError as exc:
        _error(f"cannot open the audit log {audit_log}: {exc.strerror or exc}")
        sys.exit(EXIT_ERROR)

    def ready(url: str) -> None:
        click.echo(
            f"purple: serving {url} -> {upstream} (policy {firewall.policy.name}, audit log {audit_log})", err=True
        )

    try:
        run_proxy(firewall, upstream, audit, host=host, port=port, timeout_s=timeout_s,
                  max_body_bytes=max_body_bytes, scan_history=scan_history, on_ready=ready)
    except ProxyError as exc:
        _error(str(exc))
        sys.exit(EXIT_ERROR)
    finally:
        audit.close()
        firewall.close()


# --------------------------------------------------------------------------------------------------- eval
def _thresholds(expressions: Sequence[str]) -> list[Any]:
    from purple.report.thresholds import ThresholdError, parse_threshold

    try:
        return [parse_threshold(e) for e in expressions]
    except ThresholdError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on") from None


def _finish_report(run_dir: Path, thresholds: Sequence[Any], baseline: str | None, tolerance: float = 0.0) -> Any:
    """Write the reports, print the figures and the checks; return the ReportOutcome."""
    from purple.report.build import ReportError, write_reports

    try:
        outcome = write_reports(run_dir, thresholds, baseline, tolerance)
    except ReportError as exc:
        _error(str(exc))
        sys.exit(EXIT_ERROR)
    for bench, models in outcome.stats.items():
        for model, entry in models.items():
            metrics = ", ".join(f"{k}={'n/a' if v is None else f'{v:.4g}'}" for k, v in entry["metrics"].items())
            click.echo(f"{bench} [{model}]: {entry['count']} case(s), {entry['errors']} error(s); {metrics}")
    for check in outcome.checks:
        click.echo(f"{'PASS' if check.passed else 'FAIL'} {check.name} [{check.model}]: {check.detail}")
    click.echo(f"report: {run_dir / 'report.html'}")
    return outcome


def _exit_code(outcome: Any, max_error_rate: float, retry: str) -> int:
    """2 when more cases failed than --max-error-rate allows (the figures are incomplete), else 1 when a check
    failed, else 0. `retry` says how to run the failed cases again."""
    if outcome.cases and outcome.errors == outcome.cases:
        _error("every case failed; nothing was measured")
        return EXIT_ERROR
    if outcome.errors > max_error_rate * outcome.cases:
        _error(f"{outcome.errors} of {outcome.cases} case(s) failed, more than --max-error-rate {max_error_rate:g} "
               f"allows, so the figures are incomplete; {retry}")
        return EXIT_ERROR
    return EXIT_POLICY if outcome.failed else EXIT_OK


@cli.command("eval")
@click.option("--model", "models", multiple=True, metavar="SPEC", help="Model under test (repeatable).")
@click.option("--benchmark", "benchmarks", required=True, metavar="NAME[,NAME]",
              help="instruct, autocomplete, frr, prompt_injection, interpreter, mitre, canary_exploit, safety, "
                   "multiturn_phishing; "
                   "release = safety,frr,prompt_injection,interpreter,instruct; "
                   "guard_accuracy measures --guard detectors (no --model).")
@click.option("--judge", metavar="SPEC", help="Judge model for LLM-judged benchmarks (should differ from --model).")
@click.option("--guard", "guards", multiple=True, metavar="SPEC",
              help="Detector under test for guard_accuracy (repeatable): injection[:PATH], llama_guard:MODEL, "
                   "content[:PATH], code_shield[:regex], hidden_unicode, secrets, pii, regex:PATTERN.")
@click.option("--limit", type=click.IntRange(1), help="At most N cases per benchmark, an even stride over the set.")
@click.option("--concurrency", type=click.IntRange(1, 512), default=8, show_default=True,
              help="Requests in flight.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default reports/run-TIMESTAMP).")
@click.option("--resume", is_flag=True,
              help="Finish an interrupted run in --out (same settings; cases that failed run again).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="CyberSecEval datasets folder (default: the sets shipped in benchmarks/cyberseceval).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Response cache (default ~/.cache/purple/responses).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the response cache.")
@click.option("--timeout", "timeout_s", type=FiniteFloatRange(0, min_open=True),
              default=120.0, show_default=True,
              help="Seconds per request (API models).")
@click.option("--retries", type=click.IntRange(0), default=3, show_default=True, help="Retries per request (API models).")
@click.option("--max-tokens", type=click.IntRange(1), default=1024, show_default=True)
@click.option("--fail-on", "fail_on", multiple=True, metavar="EXPR", help="e.g. 'instruct.vulnerable_rate>0.2' (repeatable).")
@click.option("--baseline", type=click.Path(), help="An earlier run folder to compare with.")
@click.option("--regression-tolerance", "tolerance", type=FiniteFloatRange(0), default=0.0, show_default=True,
              help="With --baseline: how much worse (absolute) a --fail-on metric may get before it fails.")
@click.option("--max-error-rate", type=FiniteFloatRange(0, 1), default=0.0, show_default=True,
              help="Share of cases that may fail (API, judge or detector errors, after retries) before the run "
                   "exits 2 as incomplete.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def eval_command(models: tuple[str, ...], benchmarks: str, judge: str | None, guards: tuple[str, ...],
                 limit: int | None, concurrency: int,
                 out: str | None, resume: bool, data_dir: str | None, cache_dir: str | None, no_cache: bool,
                 timeout_s: float, retries: int, max_tokens: int, fail_on: tuple[str, ...], baseline: str | None,
                 tolerance: float, max_error_rate: float, no_progress: bool) -> None:
    """Run models (or --guard detectors) against benchmarks; write records, stats, HTML, JUnit and SARIF reports
    into the run folder.

    Exit codes: 0 all thresholds pass, 1 a threshold or regression failed, 2 bad input, infrastructure error, or
    more failed cases than --max-error-rate allows (the reports are written; --resume retries the failed cases).
    """
    import time

    from purple.evals import EvalError
    from purple.evals.runner import RunConfig, default_cache_dir, run
    from purple.models.base import ModelError

    thresholds = _thresholds(fail_on)
    if resume and not out:
        raise click.UsageError("--resume needs the --out folder of the run to finish")
    run_dir = Path(out) if out else Path("reports") / time.strftime("run-%Y%m%d-%H%M%S")
    config = RunConfig(
        models=list(models), benchmarks=[b for b in benchmarks.split(",") if b.strip()], out=run_dir, judge=judge,
        limit=limit, concurrency=concurrency, data_dir=Path(data_dir) if data_dir else None,
        cache_dir=None if no_cache else Path(cache_dir) if cache_dir else default_cache_dir(), timeout_s=timeout_s,
        retries=retries, max_tokens=max_tokens, resume=resume, progress=not no_progress, guards=list(guards),
        fail_on=list(fail_on), regression_tolerance=tolerance, max_error_rate=max_error_rate,
    )
    try:
        result = run(config, on_warning=_warn)
    except (EvalError, ModelError) as exc:
        _error(str(exc))
        sys.exit(EXIT_ERROR)
    failed = [r for r in result.records if r.get("error")]
    if failed:
        _warn(f"{len(failed)} case(s) failed (first: {failed[0]['error']}); see {run_dir / 'records.jsonl'}")
    outcome = _finish_report(run_dir, thresholds, baseline, tolerance)
    code = _exit_code(outcome, max_error_rate, "run the same command with --resume to retry them")
    if code != EXIT_OK:
        sys.exit(code)


@cli.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--fail-on", "fail_on", multiple=True, metavar="EXPR", help="e.g. 'frr.refusal_rate>0.3' (repeatable).")
@click.option("--baseline", type=click.Path(), help="An earlier run folder to compare with.")
@click.option("--regression-tolerance", "tolerance", type=FiniteFloatRange(0),
              help="With --baseline: how much worse (absolute) a --fail-on metric may get before it fails "
                   "[default: the run's, else 0].")
@click.option("--max-error-rate", type=FiniteFloatRange(0, 1),
              help="Share of cases that may have failed before the exit code is 2 [default: the run's, else 0].")
def report_command(run_dir: str, fail_on: tuple[str, ...], baseline: str | None, tolerance: float | None,
                   max_error_rate: float | None) -> None:
    """Re-render the reports of an eval run folder (stats.json, report.html, junit.xml, findings.sarif).

    Without --fail-on, --regression-tolerance or --max-error-rate, the ones the run was started with (its manifest)
    apply. Exit codes as for `purple eval`.
    """
    from purple.evals import EvalError
    from purple.evals.registry import BENCHMARKS, check_thresholds
    from purple.report.build import ReportError, stored_gate

    try:
        gate = stored_gate(run_dir)
    except ReportError as exc:
        _error(str(exc))
        sys.exit(EXIT_ERROR)
    expressions = fail_on or gate.fail_on
    try:
        check_thresholds(expressions, gate.benchmarks or list(BENCHMARKS))
    except EvalError as exc:
        _error(str(exc))
        sys.exit(EXIT_ERROR)
    thresholds = _thresholds(expressions)
    if tolerance is None:
        tolerance = gate.regression_tolerance or 0.0
    if max_error_rate is None:
        max_error_rate = gate.max_error_rate or 0.0
    outcome = _finish_report(Path(run_dir), thresholds, baseline, tolerance)
    code = _exit_code(outcome, max_error_rate,
                      f"finish the run with purple eval --resume --out {_printable(run_dir)} and its settings")
    if code != EXIT_OK:
        sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: any unexpected failure is one readable line and exit code 2, never a traceback."""
    try:
        # not click's standalone mode: it turns Ctrl-C into "Aborted!" and exit 1, the policy-failure code
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="purple", standalone_mode=False)
    except SystemExit:
        raise
    except click.ClickException as exc:  # usage errors and the like: click's own message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _error("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a CLI
        _error(f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else EXIT_OK)  # --help and --version come back as 0


if __name__ == "__main__":
    main()
