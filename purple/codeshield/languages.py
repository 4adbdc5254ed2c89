"""Languages Code Shield knows: names, file extensions, and detection from a path or from the text itself."""

from __future__ import annotations

from pathlib import PurePath

import re2

LANGUAGES: tuple[str, ...] = (
    "c",
    "cpp",
    "csharp",
    "go",
    "java",
    "javascript",
    "typescript",
    "kotlin",
    "php",
    "python",
    "ruby",
    "rust",
    "swift",
)
ANY = "any"
"""Pseudo-language of rules that apply to every file (secrets)."""

_ALIASES = {
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "c#": "csharp",
    "cs": "csharp",
    "js": "javascript",
    "jsx": "javascript",
    "node": "javascript",
    "ts": "typescript",
    "tsx": "typescript",
    "kt": "kotlin",
    "py": "python",
    "python3": "python",
    "rb": "ruby",
    "rs": "rust",
    "golang": "go",
    "generic": ANY,
    "none": ANY,
    "text": ANY,
}

EXTENSIONS: dict[str, str] = {
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".ino": "cpp",
    ".cs": "csharp",
    ".go": "go",
    ".java": "java",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".php": "php",
    ".phtml": "php",
    ".py": "python",
    ".pyw": "python",
    ".rb": "ruby",
    ".rake": "ruby",
    ".rs": "rust",
    ".swift": "swift",
}

# Files that hold secrets as often as code: scanned with the language-agnostic rules only.
TEXT_EXTENSIONS = {
    ".env", ".ini", ".cfg", ".conf", ".json", ".yaml", ".yml", ".toml", ".properties", ".xml", ".pem",
    ".key", ".sh", ".bash", ".zsh", ".tf", ".txt", ".md",
}

# Markdown fence tags as LLMs write them.
FENCE_TAGS = {
    "c": "c", "h": "c", "cpp": "cpp", "c++": "cpp", "cc": "cpp", "hpp": "cpp", "cxx": "cpp", "csharp": "csharp",
    "cs": "csharp", "c#": "csharp", "go": "go", "golang": "go", "java": "java", "javascript": "javascript",
    "js": "javascript", "jsx": "javascript", "node": "javascript", "typescript": "typescript", "ts": "typescript",
    "tsx": "typescript", "kotlin": "kotlin", "kt": "kotlin", "php": "php", "python": "python", "py": "python",
    "python3": "python", "ruby": "ruby", "rb": "ruby", "rust": "rust", "rs": "rust", "swift": "swift",
}


def normalize_language(name: str) -> str:
    """Map a user-supplied language name (any case, common aliases) to Code Shield's name.

    Raises ValueError for an unknown name.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in LANGUAGES or key == ANY:
        return key
    raise ValueError(f"unknown language {name!r}; known: {', '.join(LANGUAGES)}")


def language_from_path(path: str | PurePath) -> str | None:
    """Language by file extension; `any` for known text/config files; None when unknown."""
    suffix = PurePath(path).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    name = PurePath(path).name.lower()
    if suffix in TEXT_EXTENSIONS or name.startswith(".env") or name in {"dockerfile", "makefile"}:
        return ANY
    return None


# Content detection: each language has weighted signals. Signals are anchored to shapes that occur
# in one language and rarely elsewhere, so a snippet is scanned as one language, not all of them.
_SIGNALS: dict[str, list[tuple[str, float]]] = {
    "php": [(r"<\?php", 10), (r"\$[A-Za-z_]\w*\s*(?:=|->|\[)", 2), (r"\becho\s", 1), (r"\bfunction\s+\w+\s*\(\s*\$", 3)],
    "python": [
        (r"(?m)^\s*def\s+\w+\s*\(.*\)\s*(?:->\s*[^:]+)?:\s*$", 4),
        (r"(?m)^\s*(?:from\s+[\w.]+\s+import\s|import\s+[\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*\s*$)", 3),
        (r"\b(?:True|False|None)\b", 1),
        (r"(?m)^\s*(?:if|elif|for|while|with|try|except|class)\b[^{;]*:\s*$", 2),
        (r"\bself\.", 1),
        (r"\bprint\(", 0.5),
        (r"(?m)^\s*@\w+", 0.5),
    ],
    "ruby": [
        (r"(?m)^\s*def\s+\w+[!?]?(?:\s*\(.*\))?\s*$", 3),
        (r"(?m)^\s*end\s*$", 2),
        (r"(?m)^\s*require(?:_relative)?\s+['\"]", 3),
        (r"\bputs\s", 1),
        (r"\bdo\s*\|\w+", 2),
        (r"(?m)^\s*module\s+[A-Z]", 2),
    ],
    "go": [
        (r"(?m)^package\s+\w+\s*$", 6),
        (r"(?m)^func\s+(?:\(\w+\s+\*?\w+\)\s*)?\w+\(", 4),
        (r":=", 1.5),
        (r"\bfmt\.\w+\(", 2),
        (r"(?m)^import\s*\(", 3),
    ],
    "rust": [
        (r"\bfn\s+\w+\s*(?:<[^>]*>)?\s*\(", 3),
        (r"\blet\s+mut\s", 3),
        (r"\bimpl\b", 2),
        (r"(?m)^\s*use\s+\w+::", 3),
        (r"\w+!\(", 1),
        (r"::new\(", 0.5),
        (r"\bunsafe\s*\{", 2),
        (r"->\s*(?:Result|Option|Vec|String|Self|&)", 2),
    ],
    "swift": [
        (r"(?m)^\s*import\s+(?:Foundation|UIKit|SwiftUI|Security|CommonCrypto|CryptoKit)\b", 6),
        (r"\bfunc\s+\w+\s*\([^)]*\)\s*(?:throws\s*)?(?:->|\{)", 2),
        (r"\bguard\s+let\b", 3),
        (r"\bif\s+let\b", 2),
        (r"\bvar\s+\w+\s*:\s*\[?[A-Z]\w*", 1),
    ],
    "kotlin": [
        (r"\bfun\s+\w+\s*\(", 4),
        (r"\bval\s+\w+\s*(?::\s*\w+)?\s*=", 2),
        (r"(?m)^\s*package\s+[\w.]+\s*$", 1),
        (r"\bprintln\(", 1),
        (r"(?m)^\s*import\s+(?:kotlin|kotlinx|android)\.", 4),
    ],
    "java": [
        (r"\bpublic\s+(?:final\s+)?class\s+\w+", 3),
        (r"\bSystem\.out\.print", 3),
        (r"(?m)^\s*import\s+(?:java|javax|org|com)\.[\w.]+(?:\.\*)?;", 5),
        (r"(?m)^\s*package\s+[\w.]+;", 4),
        (r"\b(?:public|private|protected)\s+(?:static\s+)?(?:final\s+)?[A-Z]?\w+(?:<[^>]*>)?\s+\w+\s*\(", 2),
        (r"\bString\[\]", 2),
        (r"@Override", 2),
    ],
    "csharp": [
        (r"(?m)^\s*using\s+System(?:\.[\w.]+)?;", 6),
        (r"(?m)^\s*namespace\s+[\w.]+", 3),
        (r"\bConsole\.Write", 3),
        (r"\bpublic\s+(?:static\s+)?(?:async\s+)?(?:void|string|int|bool|Task)\s+[A-Z]\w*\s*\(", 2),
        (r"\bstring\s+\w+\s*=", 1),
        (r"\{\s*get;\s*(?:set;)?\s*\}", 4),
        (r"\bvar\s+\w+\s*=\s*new\s+[A-Z]", 1.5),
    ],
    "cpp": [
        (r"(?m)^\s*#\s*include\s*<(?:iostream|string|vector|memory|map|cstring|cstdio|cstdlib|algorithm)>", 5),
        (r"\bstd::", 4),
        (r"\bnamespace\s+\w+\s*\{", 2),
        (r"\btemplate\s*<", 3),
        (r"\bclass\s+\w+\s*(?::\s*public\b|\{)", 1.5),
        (r"\b(?:new|delete)\s+\w", 1),
        (r"\bcout\s*<<|\bcin\s*>>", 3),
        (r"\w::\w+\(", 1),
    ],
    "c": [
        (r"(?m)^\s*#\s*include\s*[<\"]\w+\.h[>\"]", 4),
        (r"\b(?:int|void|char)\s+\*?\w+\s*\([^)]*\)\s*\{", 2),
        (r"\b(?:malloc|free|printf|sprintf|strcpy|strcat|memcpy|sizeof)\s*\(", 1.5),
        (r"(?m)^\s*#\s*define\s", 1),
        (r"\bstruct\s+\w+\s*\{", 1),
    ],
    "javascript": [
        (r"\bfunction\s*\w*\s*\([^)]*\)\s*\{", 2),
        (r"\b(?:const|let)\s+\w+\s*=", 1.5),
        (r"\bvar\s+\w+\s*=", 1),
        (r"=>", 1),
        (r"\brequire\(['\"]", 3),
        (r"\bmodule\.exports\b|\bexports\.\w+", 3),
        (r"\bconsole\.log\(", 2),
        (r"\bdocument\.|\bwindow\.", 2),
        (r"(?m)^\s*import\s+.+\s+from\s+['\"]", 3),
    ],
    "typescript": [
        (r"\binterface\s+\w+\s*\{", 2),
        (r":\s*(?:string|number|boolean|any|void|unknown)\b", 2),
        (r"\b(?:const|let)\s+\w+\s*:\s*\w+", 2),
        (r"(?m)^\s*export\s+(?:type|interface|enum)\s", 3),
        (r"\bas\s+(?:string|number|any|unknown)\b", 2),
    ],
}

_COMPILED_SIGNALS = {
    language: [(re2.compile(pattern), weight) for pattern, weight in signals]
    for language, signals in _SIGNALS.items()
}
_DETECT_PREFIX_CHARS = 20_000


def detect_language(text: str) -> str | None:
    """Guess the language of a code snippet from its content; None when nothing is convincing.

    TypeScript wins over JavaScript only with TypeScript-only evidence; C++ over C with C++-only evidence.
    """
    sample = text[:_DETECT_PREFIX_CHARS]
    scores: dict[str, float] = {}
    for language, signals in _COMPILED_SIGNALS.items():
        score = sum(weight for regex, weight in signals if regex.search(sample))
        if score:
            scores[language] = score
    if not scores:
        return None
    if "typescript" in scores and "javascript" in scores:
        scores["typescript"] += scores["javascript"]
    if "cpp" in scores and "c" in scores:
        scores["cpp"] += scores["c"]
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] >= 2 else None
