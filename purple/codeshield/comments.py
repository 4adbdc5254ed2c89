"""Blank out comments so the regex tier does not fire on commented-out code.

A linear-time RE2 lexer finds comments and string literals in one pass per file; comments become spaces
(newlines kept, so every offset, line and column stays valid); strings are left alone, so `"http://x"`
is not mistaken for a comment.
"""

from __future__ import annotations

import re2

_DQ = r'"(?:[^"\\\n]|\\.)*"'
_SQ = r"'(?:[^'\\\n]|\\.)*'"
_BT = r"`(?:[^`\\]|\\.)*`"
_LINE_SLASH = r"//[^\n]*"
_BLOCK = r"/\*(?s:.*?)\*/"
_HASH = r"#[^\n]*"
_JS_REGEX = r"(?m:^|[(,=:\[!&|?{};+\-*%<>~^])[ \t]*/(?:[^/*\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])(?:[^/\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])*/[a-z]*"

# Each lexer is an alternation of named groups; the group "c" holds a comment, the rest are strings.
_LEXERS: dict[str, str] = {
    "c_like": rf"(?P<c>{_LINE_SLASH}|{_BLOCK})|{_DQ}|{_SQ}",
    # A `/` after an operator or an opening bracket starts a regex literal, whose body may hold `//`.
    "js": rf"(?P<c>{_LINE_SLASH}|{_BLOCK})|{_DQ}|{_SQ}|{_BT}|{_JS_REGEX}",
    "go": rf"(?P<c>{_LINE_SLASH}|{_BLOCK})|{_DQ}|{_SQ}|`[^`]*`",
    "csharp": rf'(?P<c>{_LINE_SLASH}|{_BLOCK})|"""(?s:.*?)"""|\$?@\$?"(?:[^"]|"")*"|{_DQ}|{_SQ}',
    "multiline_dq": rf'(?P<c>{_LINE_SLASH}|{_BLOCK})|"""(?s:.*?)"""|{_DQ}|{_SQ}',
    "rust": (
        rf'(?P<c>{_LINE_SLASH}|{_BLOCK})|r##"(?s:.*?)"##|r#"(?s:.*?)"#|r"[^"]*"|b?{_DQ}'
        r"|b?'(?:[^'\\\n]|\\[^\n]{1,8})'"
    ),
    # Text between `?>` and the next `<?php` is HTML, where `#` and `//` are not comments.
    "php": rf"(?P<c>{_LINE_SLASH}|{_BLOCK}|{_HASH})|{_DQ}|{_SQ}|\?>(?s:.*?)(?:<\?php|<\?=|\z)",
    "python": rf'(?P<c>{_HASH})|"""(?s:.*?)"""|\'\'\'(?s:.*?)\'\'\'|{_DQ}|{_SQ}',
    # Ruby strings may span lines and hold `#{...}`; backticks and %-literals (%x(), %Q{}, %w[]) are strings too.
    "ruby": (
        rf"(?P<c>{_HASH}|(?m:^=begin(?s:.*?)^=end[^\n]*))"
        r'|"(?:[^"\\]|\\.)*"|' + _SQ + r"|`(?:[^`\\]|\\.)*`"
        r"|%[qQwWiIxrs]?(?:\((?:[^()\\]|\\.)*\)|\{(?:[^{}\\]|\\.)*\}|\[(?:[^\[\]\\]|\\.)*\])"
    ),
}

_FAMILY = {
    "c": "c_like",
    "cpp": "c_like",
    "java": "c_like",
    "csharp": "csharp",
    "javascript": "js",
    "typescript": "js",
    "go": "go",
    "kotlin": "multiline_dq",
    "swift": "multiline_dq",
    "rust": "rust",
    "php": "php",
    "python": "python",
    "ruby": "ruby",
}

_COMPILED = {family: re2.compile(pattern) for family, pattern in _LEXERS.items()}
_CHEAP_MARKERS = {"python": "#", "ruby": "#", "php": "#/"}


def _blank(text: str) -> str:
    return "\n".join(" " * len(part) for part in text.split("\n"))


def strip_comments(code: str, language: str) -> str:
    """Return `code` with every comment replaced by spaces (same length, same line breaks)."""
    family = _FAMILY.get(language)
    if family is None:
        return code
    markers = _CHEAP_MARKERS.get(language, "/")
    if not any(marker in code for marker in markers) and not (language == "ruby" and "=begin" in code):
        return code
    pieces: list[str] = []
    last = 0
    if family == "php":
        # A file that opens PHP mode later starts in HTML: keep that prefix as it is.
        opener = min((i for i in (code.find("<?php"), code.find("<?=")) if i >= 0), default=0)
        pieces.append(code[:opener])
        last = opener
    for match in _COMPILED[family].finditer(code, last) if last else _COMPILED[family].finditer(code):
        start = match.start(1)
        if start < 0:
            continue
        end = match.end(1)
        pieces.append(code[last:start])
        pieces.append(_blank(code[start:end]))
        last = end
    if last == 0:
        return code
    pieces.append(code[last:])
    return "".join(pieces)
