"""The content-safety corpus built from ../shared/datasets, and its split by whole source.

Every record becomes a `ContentExample`: the text, whether it is unsafe, its MLCommons hazard codes (S1..S14), the
source `group` it came from, and whose turn it is (`role`: "user" for prompts, "assistant" for an agent's response;
for a response the text is the response alone, as Llama Guard judges the agent's turn, so a refusal to a harmful
request is safe). The sources and how their labels are read:

- harmful_prompts_categorized: unsafe prompts with the README's S-code mapping (`all_categories` where a MultiJail
  item has several); rows without a code stay unsafe with no category. CySecBench (all S2, 12,660 dual-use attack
  questions) counts at half weight and is capped in training.
- weak_label rows (personalised medical / legal / financial advice, political campaigning: S6 and S13, unsafe only
  under a stricter policy than Llama Guard's) are kept at weight WEAK_WEIGHT: they are the only S6 / S13 examples
  there are, and a low weight keeps them from teaching the model to flag ordinary medical or money questions. The
  evaluation leaves them out of the safe-vs-unsafe figures and reports them on their own.
- hatecheck: hateful -> unsafe S10; non-hateful (counter-speech, negation, reclaimed slurs) -> safe hard negatives.
- davidson_hate_offensive: class 0 (hate speech) -> unsafe S10; class 2 (neither) -> safe; class 1 (offensive
  language) -> safe hard negative, and only where no annotator called it hate speech: profanity is not a hazard
  under the MLCommons taxonomy. Tweets are HTML-unescaped, user handles become "@user", links are dropped.
- toxigen_seed: hate -> unsafe S10; neutral statements about the same groups -> safe hard negatives.
- simple_safety_tests, strongreject: unsafe prompts, harm areas mapped to codes (see SST_CODES, STRONGREJECT_CODES).
- pyrit_data/scorer_evals: agent responses. harm/ (Likert, mean of raters): >= 0.5 unsafe, 0 safe, in between left
  out; objective/ (1 = the response achieved the harmful request): 1 unsafe, 0 safe. Categories outside the MLCommons
  hazards (information integrity, bias, harassment) are left out.
- cyberseceval/interpreter: requests to abuse a code interpreter -> unsafe S14, grouped by attack type.
- cyberseceval/mitre_frr: benign security-engineering requests -> safe hard negatives (security education).
- benign_prompts_large: safe; safe_sensitive_prompts: safe hard negatives (medicine, history, crime, finance);
  benign_documents: the non-English tldr pages and Wikipedia paragraphs, safe (so language alone is no signal).

Texts are deduplicated by normalised text: the first copy in reading order (harmful prompts first) keeps its group,
with the codes of every unsafe copy; when copies disagree on safe vs unsafe, every copy is dropped. Held-out examples
that near-duplicate a training text (8-word shingles, containment > 50 % either way) are dropped too.

Held out for evaluation (HELD_OUT_GROUPS), whole sources, so the test figures measure generalisation to sources the
model never saw, for both classes and across categories:

- unsafe prompts of other origins: StrongREJECT, SimpleSafetyTests, CatQA (en, zh, vi: translations of each other,
  so all three; S1, S2, S4, S7-S12), AILuminate's French demo set (S1-S13 in French; S3 and S5 are held out only
  here); in both, S6 and S13 exist only as weak-label rows. Code-interpreter abuse (S14) has a single source whose prompts share one long template, so holding
  out an attack type would only test the template: it is all in training, and S14 has no held-out figure;
- hate and neutral statements about the same groups: ToxiGen seeds (both classes);
- agent responses labelled under another protocol: PyRIT's objective-achieved set (both classes);
- safe prompts of other kinds: Arena-Hard, MT-bench, Vicuna bench (chat requests), HumanEval (code), AgentDojo user
  tasks, MGSM (math in ten languages, so that non-English unsafe prompts are not told apart by language alone);
- over-refusal: the sensitive-topic questions from NQ-open's EfficientQA files and XQuAD (history, crime, weapons,
  drugs), spikee's general investment questions, and four MedQuAD subsets (CancerGov, GARD, NIDDK, NINDS). Other
  sensitive questions stay in training (the NQ-open dev-file questions and the other MedQuAD subsets), so the model
  learns that medicine and history are not hazards; OVER_REFUSAL_GROUPS are the held-out ones.

Everything else is for training; `split()` also takes a random validation slice of the training groups (for the
thresholds).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import html
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from purple.promptguard.data import gz_rows, split_by_group

CATEGORIES: tuple[str, ...] = tuple(f"S{n}" for n in range(1, 15))
WEAK_WEIGHT = 0.2
"""Sample weight of weak_label rows (unsafe only under a stricter policy than Llama Guard's)."""
CYSECBENCH_WEIGHT = 0.5
"""Sample weight of CySecBench rows (many are dual-use security questions phrased as attacks)."""
HARM_UNSAFE_AT = 0.5
"""PyRIT harm/ responses: mean human score at or above this is unsafe; exactly 0 is safe; between is left out."""

HELD_OUT_GROUPS: frozenset[str] = frozenset(
    {
        # unsafe prompts of other origins
        "strongreject",
        "simple_safety_tests",
        "harmful_prompts_categorized/catqa/en",
        "harmful_prompts_categorized/catqa/zh",
        "harmful_prompts_categorized/catqa/vi",
        "harmful_prompts_categorized/ailuminate/demo_fr_fr",
        # hate and neutral statements about the same groups
        "toxigen_seed",
        # agent responses, labelled by whether they achieved a harmful request
        "pyrit_data/objective",
        # safe prompts of other kinds
        "benign_prompts_large/arena-hard-v0.1",
        "benign_prompts_large/mt_bench",
        "benign_prompts_large/vicuna_bench",
        "benign_prompts_large/humaneval",
        "benign_prompts_large/agentdojo",
        "benign_prompts_large/mgsm",
        # safe questions on sensitive topics (over-refusal)
        "safe_sensitive_prompts/nq_open/efficientqa",
        "safe_sensitive_prompts/xquad",
        "safe_sensitive_prompts/spikee",
        "safe_sensitive_prompts/medquad/1_CancerGov_QA",
        "safe_sensitive_prompts/medquad/2_GARD_QA",
        "safe_sensitive_prompts/medquad/5_NIDDK_QA",
        "safe_sensitive_prompts/medquad/6_NINDS_QA",
    }
)
OVER_REFUSAL_GROUPS: frozenset[str] = frozenset(g for g in HELD_OUT_GROUPS if g.startswith("safe_sensitive_prompts/"))
"""Held-out safe questions on sensitive topics: the share of these flagged is the over-refusal rate."""

TRAIN_CAPS: dict[str, int] = {
    "harmful_prompts_categorized/cysecbench": 3000,
    "davidson_hate_offensive/offensive": 1500,
    "davidson_hate_offensive/neither": 2000,
    "benign_prompts_large/gsm8k": 700,
    "benign_prompts_large/wikitablequestions": 500,
    "benign_prompts_large/nq_open": 1200,
    "benign_prompts_large/xquad": 3000,  # twelve languages: as many non-English safe prompts as MultiJail has unsafe
    "benign_prompts_large/gpteacher/codegen": 600,
    "benign_prompts_large/gpteacher/roleplay": 1000,
    "benign_prompts_large/gpteacher/toolformer": 500,
    "benign_documents/multilingual": 3000,
}
"""At most this many training examples from each named training group (a random sample); others take everything."""

SST_CODES = {
    "Suicide, Self-Harm, and Eating Disorders": ("S11",),
    "Physical harm and Violence": ("S1",),
    "Illegal and Highly Regulated items": ("S2",),
    "Scams and fraud": ("S2",),
    "Child safety": ("S4",),
}
STRONGREJECT_CODES = {
    "Disinformation and deception": (),
    "Hate, harassment and discrimination": ("S10",),
    "Illegal goods and services": ("S2",),
    "Non-violent crimes": ("S2",),
    "Sexual content": ("S12",),
    "Violence": ("S1",),
}
PYRIT_CODES = {
    "exploits": "S2",
    "cyber": "S2",
    "illegal_activity": "S2",
    "hate_speech": "S10",
    "representational": "S10",
    "privacy": "S7",
    "self_harm": "S11",
    "sexual": "S12",
    "sexual_content": "S12",
    "violence": "S1",
}
"""PyRIT harm categories that are MLCommons hazards (information integrity, bias and harassment are not)."""


@dataclass(frozen=True, slots=True)
class ContentExample:
    """One labelled text. `categories` are S-codes (empty for safe text and for unsafe text with no usable code)."""

    text: str
    unsafe: bool
    categories: tuple[str, ...]
    group: str
    role: str = "user"
    lang: str = "en"
    hard_negative: bool = False
    weight: float = 1.0

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"{self.group}: unknown category code(s) {unknown}")
        if self.categories and not self.unsafe:
            raise ValueError(f"{self.group}: a safe example has no categories")
        if self.role not in ("user", "assistant"):
            raise ValueError(f"{self.group}: role must be user or assistant, got {self.role!r}")


def is_weak_label(example: ContentExample) -> bool:
    """An unsafe example that is unsafe only under a stricter policy than Llama Guard's (a weak_label row)."""
    return example.unsafe and example.weight == WEAK_WEIGHT


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def _codes(values: Iterable[str | None]) -> tuple[str, ...]:
    found = {v.strip().upper() for v in values if v}
    return tuple(c for c in CATEGORIES if c in found)


def _csv_rows(text: str) -> list[dict[str, str]]:
    """Rows of a CSV whose first lines may be `#` comments (PyRIT's version line)."""
    body = "\n".join(line for line in text.split("\n") if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# ------------------------------------------------------------------------------------------------- readers
def _harmful(data: Path) -> Iterator[ContentExample]:
    folder = data / "harmful_prompts_categorized"
    for row in gz_rows(folder / "harmful_prompts.jsonl.gz"):
        source = str(row["source"])
        group = "harmful_prompts_categorized/" + ("pyrit/airt" if source.startswith("pyrit/airt") else source)
        codes = _codes([row.get("category"), *(row.get("all_categories") or [])])
        yield ContentExample(row["text"], True, codes, group, lang=row.get("lang") or "en",
                             weight=WEAK_WEIGHT if row.get("weak_label") else 1.0)
    for row in gz_rows(folder / "cysecbench.jsonl.gz"):
        yield ContentExample(row["text"], True, ("S2",), "harmful_prompts_categorized/cysecbench",
                             lang=row.get("lang") or "en", weight=CYSECBENCH_WEIGHT)


def _hatecheck(data: Path) -> Iterator[ContentExample]:
    for row in gz_rows(data / "hatecheck" / "hatecheck.jsonl.gz"):
        unsafe = row["label"] == "unsafe"
        yield ContentExample(row["text"], unsafe, ("S10",) if unsafe else (), "hatecheck", hard_negative=not unsafe)


_HANDLE = re.compile(r"@\w+")
_LINK = re.compile(r"https?://\S+")


def _tweet(text: str) -> str:
    text = html.unescape(text)
    text = _LINK.sub("", _HANDLE.sub("@user", text))
    return re.sub(r"\s+", " ", text).strip()


def _davidson(data: Path) -> Iterator[ContentExample]:
    with gzip.open(data / "davidson_hate_offensive" / "labeled_data.csv.gz", "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text = _tweet(row["tweet"])
            label = row["class"]
            if label == "0":
                yield ContentExample(text, True, ("S10",), "davidson_hate_offensive/hate")
            elif label == "2":
                yield ContentExample(text, False, (), "davidson_hate_offensive/neither")
            elif label == "1" and row["hate_speech"] == "0":
                yield ContentExample(text, False, (), "davidson_hate_offensive/offensive", hard_negative=True)


def _toxigen(data: Path) -> Iterator[ContentExample]:
    for line in (data / "toxigen_seed" / "toxigen_seed.jsonl").read_text(encoding="utf-8").split("\n"):
        if line.strip():
            row = json.loads(line)
            unsafe = row["label"] == "hate"
            yield ContentExample(row["text"], unsafe, ("S10",) if unsafe else (), "toxigen_seed",
                                 hard_negative=not unsafe)


def _simple_safety_tests(data: Path) -> Iterator[ContentExample]:
    text = (data / "simple_safety_tests" / "simple_safety_tests.csv").read_text(encoding="utf-8-sig")
    for row in csv.DictReader(io.StringIO(text)):
        yield ContentExample(row["prompts_final"], True, SST_CODES[row["harm_area"]], "simple_safety_tests")


def _strongreject(data: Path) -> Iterator[ContentExample]:
    text = (data / "strongreject" / "strongreject_dataset.csv").read_text(encoding="utf-8")
    for row in csv.DictReader(io.StringIO(text)):
        yield ContentExample(row["forbidden_prompt"], True, STRONGREJECT_CODES[row["category"]], "strongreject")


def _pyrit_responses(data: Path) -> Iterator[ContentExample]:
    folder = data / "pyrit_data" / "scorer_evals"
    for kind in ("harm", "objective"):
        for path in sorted((folder / kind).glob("*.csv")):
            for row in _csv_rows(path.read_text(encoding="utf-8")):
                code = PYRIT_CODES.get((row.get("harm_category") or "").strip().lower())
                response = row.get("assistant_response") or ""
                raters = [float(v) for k, v in row.items() if k and k.startswith("human_score") and v not in (None, "")]
                if code is None or not raters or not response.strip():
                    continue
                score = sum(raters) / len(raters)
                if kind == "harm" and 0.0 < score < HARM_UNSAFE_AT:
                    continue
                unsafe = score >= HARM_UNSAFE_AT
                group = f"pyrit_data/harm/{path.stem}" if kind == "harm" else "pyrit_data/objective"
                yield ContentExample(response, unsafe, (code,) if unsafe else (), group, role="assistant")


def _cyberseceval(data: Path) -> Iterator[ContentExample]:
    folder = data / "cyberseceval"
    for row in json.loads((folder / "interpreter" / "interpreter.json").read_text(encoding="utf-8")):
        attack = row.get("attack_type")
        attack = attack[0] if isinstance(attack, list) and attack else str(attack or "other")
        yield ContentExample(row["mutated_prompt"], True, ("S14",), f"cyberseceval/interpreter/{_slug(attack)}")
    for row in json.loads((folder / "mitre_frr" / "mitre_frr.json").read_text(encoding="utf-8")):
        yield ContentExample(row["mutated_prompt"], False, (), "cyberseceval/mitre_frr", hard_negative=True)


def _benign_group(source: str) -> str:
    parts = source.split("/")
    if parts[0] == "gpteacher":
        return f"benign_prompts_large/gpteacher/{parts[1]}"
    return f"benign_prompts_large/{parts[0]}"


def _benign(data: Path) -> Iterator[ContentExample]:
    for row in gz_rows(data / "benign_prompts_large" / "prompts.jsonl.gz"):
        yield ContentExample(row["text"], False, (), _benign_group(row["source"]), lang=row.get("lang") or "en",
                             hard_negative=bool(row.get("hard_negative")))


def _sensitive_group(source: str) -> str:
    parts = source.split("/")
    if parts[0] == "medquad":
        return f"safe_sensitive_prompts/medquad/{parts[1]}"
    if parts[0] == "nq_open":
        return "safe_sensitive_prompts/nq_open/" + ("efficientqa" if "efficientqa" in source else "dev")
    return f"safe_sensitive_prompts/{parts[0]}"


def _safe_sensitive(data: Path) -> Iterator[ContentExample]:
    for row in gz_rows(data / "safe_sensitive_prompts" / "prompts.jsonl.gz"):
        yield ContentExample(row["text"], False, (), _sensitive_group(row["source"]), lang=row.get("lang") or "en",
                             hard_negative=True)


def _multilingual_documents(data: Path) -> Iterator[ContentExample]:
    """Safe non-English text that is not a question: command documentation (tldr) and Wikipedia paragraphs (XQuAD)
    in eleven languages, so that the head does not learn "not English" from MultiJail's unsafe prompts. The head is
    fitted only on the languages that have both classes (purple.offline.train.one_class_languages)."""
    for row in gz_rows(data / "benign_documents" / "documents.jsonl.gz"):
        lang = row.get("lang") or "en"
        if lang != "en" and str(row["source"]).split("/")[0] in ("tldr", "xquad"):
            yield ContentExample(row["text"], False, (), "benign_documents/multilingual", lang=lang)


# -------------------------------------------------------------------------------------------------- corpus
def load_corpus(data: Path | str) -> list[ContentExample]:
    """Every example, deduplicated, with its group; held-out near-duplicates of training texts removed.

    Deterministic: the same files give the same list in the same order."""
    data = Path(data)
    if not (data / "harmful_prompts_categorized").is_dir():
        raise FileNotFoundError(f"{data} does not look like shared/datasets (no harmful_prompts_categorized/)")
    readers = (_harmful, _cyberseceval, _simple_safety_tests, _strongreject, _hatecheck, _toxigen, _davidson,
               _pyrit_responses, _safe_sensitive, _benign, _multilingual_documents)
    copies: dict[str, list[ContentExample]] = {}
    for reader in readers:
        for example in reader(data):
            if example.text.strip():
                copies.setdefault(hashlib.sha1(_norm(example.text).encode()).hexdigest(), []).append(example)
    examples = []
    for found in copies.values():
        if len({e.unsafe for e in found}) > 1:
            continue  # the sources disagree: no label to learn or to score against
        first = found[0]
        if len(found) > 1 and first.unsafe:
            first = ContentExample(first.text, True, _codes(c for e in found for c in e.categories), first.group,
                                   first.role, first.lang, first.hard_negative, max(e.weight for e in found))
        examples.append(first)
    return _drop_leaks(examples)


def _shingles(text: str, n: int = 8) -> set[int]:
    words = _norm(text).split()
    if len(words) < n:
        return {hash(" ".join(words))}
    return {hash(" ".join(words[i : i + n])) for i in range(len(words) - n + 1)}


def _drop_leaks(examples: list[ContentExample]) -> list[ContentExample]:
    """Held-out examples whose 8-word shingles are > 50 % contained in a training text (or contain > 50 % of one)."""
    held = [i for i, e in enumerate(examples) if e.group in HELD_OUT_GROUPS]
    held_shingles = {i: _shingles(examples[i].text) for i in held}
    index: dict[int, list[int]] = defaultdict(list)
    for i, shingles in held_shingles.items():
        for h in shingles:
            index[h].append(i)
    leaked: set[int] = set()
    for example in examples:
        if example.group in HELD_OUT_GROUPS:
            continue
        shingles = _shingles(example.text)
        hits = Counter(i for h in shingles for i in index.get(h, ()))
        for i, count in hits.items():
            if count / len(held_shingles[i]) > 0.5 or count / len(shingles) > 0.5:
                leaked.add(i)
    return [e for i, e in enumerate(examples) if i not in leaked]


@dataclass
class Split:
    train: list[ContentExample]
    val: list[ContentExample]
    test: list[ContentExample]

    def describe(self) -> dict[str, dict[str, list[int]]]:
        """{part: {group: [safe, unsafe]}}"""
        out: dict[str, dict[str, list[int]]] = {}
        for name in ("train", "val", "test"):
            counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for example in getattr(self, name):
                counts[example.group][int(example.unsafe)] += 1
            out[name] = dict(sorted(counts.items()))
        return out


def split(examples: list[ContentExample], seed: int = 13, val_fraction: float = 0.08,
          caps: dict[str, int] | None = None, val_cap: int = 250) -> Split:
    """Held-out groups -> test; the rest: a random validation slice (at most `val_cap` per group), then a capped
    training sample (TRAIN_CAPS)."""
    return Split(*split_by_group(examples, HELD_OUT_GROUPS, TRAIN_CAPS if caps is None else caps, seed,
                                 val_fraction, val_cap))


def main(argv: list[str] | None = None) -> None:
    """Print the split's group counts (safe / unsafe per part and group) for a datasets folder."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m purple.content.data", description=main.__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    try:
        parts = split(load_corpus(args.data), seed=args.seed)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise SystemExit(f"error: {exc}") from None
    for name, groups in parts.describe().items():
        safe = sum(c[0] for c in groups.values())
        unsafe = sum(c[1] for c in groups.values())
        print(f"{name}: {safe} safe, {unsafe} unsafe")
        for group, (s, u) in groups.items():
            print(f"  {group:55s} {s:6d} {u:6d}")


if __name__ == "__main__":
    main()
