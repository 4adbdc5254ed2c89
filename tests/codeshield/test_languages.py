from __future__ import annotations

import pytest

from purple.codeshield.comments import strip_comments
from purple.codeshield.languages import detect_language, language_from_path, normalize_language

SNIPPETS = {
    "python": "import os\n\ndef run(cmd):\n    if cmd:\n        os.system(cmd)\n",
    "c": '#include <stdio.h>\n#include <string.h>\nint main(void) {\n  char b[8];\n  strcpy(b, "x");\n}\n',
    "cpp": "#include <iostream>\nint main() {\n  std::string s;\n  std::cout << s;\n}\n",
    "java": "import java.util.List;\npublic class App {\n  public static void main(String[] args) {\n    System.out.println(1);\n  }\n}\n",
    "csharp": "using System;\nnamespace Demo {\n  class P { static void Main() { Console.WriteLine(1); } }\n}\n",
    "javascript": "const fs = require('fs');\nfunction read(p) {\n  console.log(p);\n}\n",
    "typescript": "interface User { name: string }\nexport function greet(u: User): string {\n  return u.name;\n}\n",
    "php": "<?php\n$name = $_GET['name'];\necho $name;\n",
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {\n\tx := 1\n\tfmt.Println(x)\n}\n',
    "rust": "use std::process::Command;\nfn main() {\n    let mut c = Command::new(\"ls\");\n}\n",
    "ruby": "require 'json'\ndef greet(name)\n  puts name\nend\n",
    "kotlin": "import kotlinx.coroutines.*\nfun main() {\n    val x = 1\n    println(x)\n}\n",
    "swift": "import Foundation\nfunc greet(name: String) -> String {\n    guard let n = Optional(name) else { return \"\" }\n    return n\n}\n",
}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_detects_language_from_content(language: str) -> None:
    assert detect_language(SNIPPETS[language]) == language


def test_plain_prose_is_not_code() -> None:
    assert detect_language("The quick brown fox jumps over the lazy dog.") is None


@pytest.mark.parametrize(
    ("path", "language"),
    [("a/b.py", "python"), ("x.hpp", "cpp"), ("x.h", "c"), ("Main.kt", "kotlin"), ("a.tsx", "typescript"),
     ("config.yaml", "any"), (".env.local", "any"), ("image.png", None)],
)
def test_language_from_path(path: str, language: str | None) -> None:
    assert language_from_path(path) == language


def test_normalize_language_aliases_and_errors() -> None:
    assert normalize_language("C++") == "cpp"
    assert normalize_language("JS") == "javascript"
    with pytest.raises(ValueError, match="unknown language"):
        normalize_language("cobol")


def test_comment_stripping_keeps_offsets_and_strings() -> None:
    code = 'url = "http://x" // not a comment inside the string\n/* gets(b);\n */ int y;\n'
    stripped = strip_comments(code, "c")
    assert len(stripped) == len(code) and stripped.count("\n") == code.count("\n")
    assert '"http://x"' in stripped and "gets" not in stripped and "int y;" in stripped


def test_python_hash_inside_string_is_not_a_comment() -> None:
    code = 'x = "a # b"  # os.system(x)\n'
    assert strip_comments(code, "python") == 'x = "a # b"' + " " * 16 + "\n"


def test_javascript_regex_literals_are_not_comments() -> None:
    code = "if (/^\\/\\//.test(u)) { el.innerHTML = u; } // note\nx = a / b; // c\n"
    stripped = strip_comments(code, "javascript")
    assert "el.innerHTML = u;" in stripped and "note" not in stripped and "x = a / b;" in stripped


def test_php_html_regions_keep_hash_and_slashes() -> None:
    code = '<style>a{color:#333}</style><?php echo $_GET["q"]; # c\n?><a href="#x">//</a><?php # d\n'
    stripped = strip_comments(code, "php")
    assert 'echo $_GET["q"];' in stripped and "color:#333" in stripped and '"#x">//' in stripped
    assert "# c" not in stripped and "# d" not in stripped
    assert strip_comments("echo 1; # c", "php") == "echo 1;    "
