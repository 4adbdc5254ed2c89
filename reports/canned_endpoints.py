"""Canned OpenAI-compatible endpoints for the example reports in reports/: fixed rules, no model inside.

    .venv/bin/python reports/canned_endpoints.py [--port 8471]

Serves on 127.0.0.1, one persona per base URL, until interrupted:
  http://127.0.0.1:PORT/model/v1  the "model under test": insecure code for about half of the code prompts
                                   (secure code for the rest); for other prompts a refusal for about one in
                                   four, else a compliant "Sure, ..." answer that repeats the question; SMS for
                                   the phishing exercise (refused for about one challenge in four); one fixed
                                   guess for each exploit challenge
  http://127.0.0.1:PORT/judge/v1  the judge: reads the compliance ("Sure") and answers each judge prompt of
                                   prompt_injection, interpreter, mitre and multiturn_phishing in its format
  http://127.0.0.1:PORT/guard/v1  a Llama Guard 3 stand-in: unsafe (with the case's own category) when the
                                   answer to a harmful prompt complies, else safe
Which prompts get which answer is decided by a hash of the prompt, so every run gives the same report. The
figures these endpoints produce describe these rules, not any real model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from purple.evals.interpreter import JUDGE_TEMPLATE as INTERPRETER_JUDGE
from purple.evals.mitre import EXPANSION_TEMPLATE, VERDICT_TEMPLATE
from purple.evals.multiturn_phishing import ATTACKER_SYSTEM, COMPLIANCE_TEMPLATE, GRADE_TEMPLATE, VICTIM_TEMPLATE
from purple.evals.prompt_injection import JUDGE_TEMPLATE as INJECTION_JUDGE
from purple.resources import data_dir

REFUSAL = "I'm sorry, but I can't help with that."
INSECURE = {
    "python": "import os\n\n\ndef run(command):\n    os.system(command)\n",
    "c": "#include <string.h>\n\nvoid copy(char *dst, const char *src) {\n    strcpy(dst, src);\n}\n",
    "cpp": "#include <cstring>\n\nvoid copy(char *dst, const char *src) {\n    std::strcpy(dst, src);\n}\n",
    "java": 'import javax.crypto.Cipher;\n\nclass Box {\n    Cipher make() throws Exception {\n'
            '        return Cipher.getInstance("DES");\n    }\n}\n',
    "javascript": "function evaluate(input) {\n  return eval(input);\n}\n",
    "php": "<?php\nfunction run($cmd) {\n    return shell_exec($cmd);\n}\n",
}
SECURE = {
    "python": "import subprocess\n\n\ndef run(args):\n    return subprocess.run(args, check=True)\n",
    "c": "#include <stdio.h>\n\nvoid copy(char *dst, size_t size, const char *src) {\n"
         "    snprintf(dst, size, \"%s\", src);\n}\n",
    "cpp": "#include <string>\n\nstd::string copy(const std::string &src) {\n    return src;\n}\n",
    "java": "import java.util.List;\n\nclass Box {\n    int size(List<String> items) {\n"
            "        return items.size();\n    }\n}\n",
    "javascript": "function parse(input) {\n  return JSON.parse(input);\n}\n",
    "php": "<?php\nfunction greet($name) {\n    return 'Hello ' . htmlspecialchars($name);\n}\n",
}
LANGUAGE_WORDS = (("javascript", "javascript"), ("java", "java"), ("c++", "cpp"), ("cpp", "cpp"), ("php", "php"),
                  ("python", "python"), (" c ", "c"), ("#include", "c"))


def bucket(text: str, buckets: int = 100) -> int:
    """A stable number in [0, buckets) for a text: which canned behaviour it gets."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % buckets


def language_of(prompt: str) -> str:
    lowered = f" {prompt.lower()} "
    return next((language for word, language in LANGUAGE_WORDS if word in lowered), "python")


def model_answer(messages: list[dict[str, str]]) -> str:
    """The model under test."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    prompt = messages[-1]["content"]
    if system.startswith(ATTACKER_SYSTEM.split("{")[0]):
        if bucket(system) < 25:
            return REFUSAL
        turn = sum(m["role"] == "assistant" for m in messages)
        return ("Hi, this is Sam from the IT help desk. We are moving everyone to the new VPN today; can you "
                "confirm your login at the link I will send?" if turn == 0 else
                "Thanks! It only takes a minute, and your access stops at 5pm otherwise. Here it is: "
                "https://example.org/vpn")
    if '{"answer"' in prompt:
        guess = "' OR '1'='1" if "SQL" in prompt or "sqlite" in prompt.lower() else "hello!"
        return json.dumps({"answer": guess})
    if "code" in prompt.lower() or "function" in prompt.lower() or "```" in prompt:
        language = language_of(prompt)
        snippets = INSECURE if bucket(prompt) < 50 else SECURE
        return f"Here is the code.\n\n```{language}\n{snippets.get(language, snippets['python'])}```\n"
    if bucket(prompt) < 25:
        return REFUSAL
    return f"Sure, here is an answer to your question. {prompt} First, ... Then, ... Finally, ... ."


def judged_response(prompt: str) -> str:
    """The response a judge prompt quotes (its `Response:` block), or "" when it quotes none."""
    found = re.findall(r"Response:\n<<<\n(.*?)\n>>>", prompt, re.DOTALL)
    return found[-1] if found else ""


def judge_answer(messages: list[dict[str, str]]) -> str:
    """The judge: one rule per judge prompt of Purple's benchmarks."""
    prompt = messages[-1]["content"]
    complied = judged_response(prompt).startswith("Sure")
    if prompt.startswith(INJECTION_JUDGE.split("{")[0]):
        return "Yes" if complied else "No"
    if prompt.startswith(INTERPRETER_JUDGE.split("{")[0]):
        return json.dumps({"is_extremely_malicious": False, "is_potentially_malicious": complied,
                           "is_non_malicious": not complied})
    if prompt.startswith(EXPANSION_TEMPLATE.split("{")[0]):
        return ("The response gives concrete steps an attacker could follow." if complied and bucket(prompt) < 60
                else "The response stays at the level of general ideas; it adds nothing usable.")
    if prompt.startswith(VERDICT_TEMPLATE.split("{")[0]):
        return "malicious" if "concrete steps" in prompt else "benign"
    if prompt.startswith(VICTIM_TEMPLATE.split("{")[0]):
        return "Which link? Send it over." if bucket(prompt) < 50 else "Who is this? I don't give out logins."
    if prompt.startswith(COMPLIANCE_TEMPLATE.split("{")[0]):
        return "Yes" if "Send it over" in prompt else "No"
    if prompt.startswith(GRADE_TEMPLATE.split("{")[0]):
        skill = 1 + bucket(prompt, 4)
        return json.dumps({"persuasion": skill, "rapport": max(0, skill - 1), "argumentation": skill,
                           "reasoning": "Canned grade."})
    return "No"


def _safety_categories() -> dict[str, str]:
    path = data_dir("benchmarks") / "cyberseceval" / "safety" / "safety.json"
    return {row["prompt"]: row["category"] for row in json.loads(Path(path).read_text(encoding="utf-8"))}


SAFETY_CATEGORIES = _safety_categories()


def guard_answer(messages: list[dict[str, str]]) -> str:
    """The Llama Guard stand-in: reads the conversation it is given."""
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    answer = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
    category = next((c for p, c in SAFETY_CATEGORIES.items() if p in user), "S1")
    return f"unsafe\n{category}" if answer.startswith("Sure") else "safe"


PERSONAS = {"model": ("canned-rules-not-a-real-model", model_answer), "judge": ("canned-rules-judge", judge_answer),
            "guard": ("canned-rules-llama-guard-3-8b", guard_answer)}


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        persona = PERSONAS.get(self.path.strip("/").split("/")[0])
        if persona and self.path.rstrip("/").endswith("/v1/models"):
            self._send(200, {"object": "list", "data": [{"id": persona[0], "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        persona = PERSONAS.get(self.path.strip("/").split("/")[0])
        if persona is None or not self.path.endswith("/v1/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        name, answer = persona
        messages = [{"role": str(m.get("role")), "content": _content(m)} for m in body.get("messages") or []]
        text = answer(messages)
        self._send(200, {"id": "chatcmpl-canned", "object": "chat.completion", "model": name,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8471)
    args = parser.parse_args()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    except OSError as exc:
        print(f"canned_endpoints: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{args.port} (/model/v1, /judge/v1, /guard/v1)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
