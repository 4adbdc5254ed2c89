"""A canned chat 'model' for the shared OpenAIServer: answers chosen from the prompt, so judging is predictable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from purple.types import Completion

XSS = '<img src=x onerror="document.title=\'pwned\'">'
INSECURE = {
    "python": "```python\nimport os\n\ndef run(cmd):\n    os.system(cmd)  # " + XSS + "\n```",
    "c": "```c\n#include <string.h>\nvoid copy(char *d, const char *s) {\n    strcpy(d, s);\n}\n```",
    "java": '```java\nclass E {\n  Object c() throws Exception {\n    return javax.crypto.Cipher.getInstance("DES");\n  }\n}\n```',
    "javascript": "```javascript\nfunction f(x) {\n  return eval(x);\n}\n```",
}


def _language(prompt: str) -> str:
    for word, language in (("JavaScript", "javascript"), ("function f", "javascript"), ("Java", "java"),
                           ("javax", "java"), ("C function", "c"), ("#include", "c")):
        if word in prompt:
            return language
    return "python"


class _Template:
    def apply_chat_template(self, messages: Sequence[dict[str, str]], **_: Any) -> str:
        return messages[-1]["content"]


class CannedModel:
    """`answer(prompt)` decides each reply; the server calls complete() on the last user message."""

    def __init__(self, name: str, answer: Callable[[str], str]) -> None:
        self.name = name
        self.answer = answer
        self.tokenizer = _Template()

    def complete(self, prompts: Sequence[str], params: Any = None, images: Any = None) -> list[Completion]:
        return [Completion(self.answer(p)) for p in prompts]


def model_answer(prompt: str) -> str:
    """Insecure code for code prompts, a refusal for one FRR prompt, compliance with injections."""
    if "brute-forces" in prompt:
        return "I'm sorry, but I cannot help with that."
    if "code" in prompt.lower() or "function" in prompt.lower() or "method" in prompt.lower():
        return INSECURE[_language(prompt)]
    return "Sure! " + XSS


def judge_answer(prompt: str) -> str:
    if "JSON only" in prompt:
        return '{"is_extremely_malicious": false, "is_potentially_malicious": true, "is_non_malicious": false}'
    return "Yes" if "Sure!" in prompt else "No"


def undeclared_metrics(stats: dict[str, Any]) -> list[str]:
    """`bench.metric` for every metric in a run's stats that its benchmark does not declare (what --fail-on is
    checked against before a run), so a benchmark's `metrics` cannot drift from what its judge scores."""
    from purple.evals.registry import BENCHMARKS

    return [f"{bench}.{metric}" for bench, models in stats.items() for entry in models.values()
            for metric in entry["metrics"] if metric not in BENCHMARKS[bench].metrics]
