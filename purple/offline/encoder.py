"""The frozen sentence encoder of Purple's offline classifiers, with its linear heads, loaded from one folder.

A model folder holds one `model.safetensors` with the first layers of all-MiniLM-L6-v2 (stored as int8 with one
float16 scale per row) and small linear heads on its mean-pooled output and the window's bag of tokens. Two folders
ship: `purple/offline/model/` (MODEL_DIR: the pretrained layers, unchanged, and the prompt injection / jailbreak head)
and `purple/offline/content_model/` (CONTENT_MODEL_DIR: the same layers distilled for other languages, and the
content-safety head, unsafe + S1..S14). Every head in a folder reads the same vector, so a text is encoded once per
folder; `SharedEncoder` keeps a small cache of recent window vectors so detectors asking about the same message pay
once.

The encoder runs in onnxruntime on CPU from `encoder.onnx`, a weight-free graph whose tensors are read from
`model.safetensors` (see purple.offline.graph); the int8 matrices run as int8. Needs onnxruntime, tokenizers,
safetensors and numpy (`purple[offline]`), never torch, never the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from purple.windows import window_starts

MODEL_DIR = Path(__file__).resolve().parent / "model"
"""The shipped injection model (the pretrained encoder layers and the `injection` head)."""
CONTENT_MODEL_DIR = Path(__file__).resolve().parent / "content_model"
"""The shipped content model (the encoder layers distilled for other languages and the `content` head)."""
SCALE_SUFFIX = ".__scale"
"""A tensor stored as int8 has a float16 per-row scale under its name plus this suffix."""
GRAPH_FILE = "encoder.onnx"
WEIGHTS_FILE = "model.safetensors"
HEADER_KEY = "safetensors_header_sha256"
"""Metadata key of encoder.onnx: the sha256 of the safetensors header it was written for."""
REQUIRED_FILES = (WEIGHTS_FILE, GRAPH_FILE, "tokenizer.json", "config.json", "purple.json")


class OfflineModelError(RuntimeError):
    """The shipped model folder is missing, incomplete or unreadable: one readable line."""


def read_header(path: Path) -> tuple[dict[str, Any], int, str]:
    """(tensor entries of a safetensors file, byte offset of its data section, sha256 of the header bytes)."""
    with path.open("rb") as handle:
        size_bytes = handle.read(8)
        if len(size_bytes) != 8:
            raise ValueError(f"{path} is not a safetensors file")
        (size,) = struct.unpack("<Q", size_bytes)
        if size > 100_000_000:
            raise ValueError(f"{path} is not a safetensors file (header of {size} bytes)")
        header = handle.read(size)
    try:
        entries = json.loads(header)
    except ValueError:
        raise ValueError(f"{path} is not a safetensors file (unreadable header)") from None
    if not isinstance(entries, dict):
        raise ValueError(f"{path} is not a safetensors file (unreadable header)")
    entries.pop("__metadata__", None)
    return entries, 8 + size, hashlib.sha256(header).hexdigest()


def read_settings(folder: Path) -> dict[str, Any]:
    path = folder / "purple.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OfflineModelError(f"{folder} is not a Purple offline model (no purple.json)") from None
    except (OSError, ValueError) as exc:
        raise OfflineModelError(f"cannot read {path}: {exc}") from None


MAX_THREADS = 8
"""A 144-token window has too little work to share among more threads than this."""


def default_threads() -> int:
    """The CPUs this process may use, at most MAX_THREADS (onnxruntime's own default counts physical cores only)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, usable))


def token_bag(window: Sequence[int]) -> tuple[list[int], float]:
    """A window's bag of tokens as the heads read it (in training and at inference): its distinct body tokens
    (without [CLS] / [SEP]), sorted, and the value each takes, 1/sqrt(how many there are)."""
    distinct = sorted(set(window[1:-1]))
    return distinct, (1.0 / len(distinct) ** 0.5 if distinct else 0.0)


class SharedEncoder:
    """Tokeniser + truncated MiniLM encoder (onnxruntime) + linear heads, loaded from one folder.

    `windows(text)` cuts a (normalised) text into token windows; `embed(windows)` returns their mean-pooled vectors
    (cached); `head_scores(name, vectors, windows)` applies a head (sigmoid of a linear map) per row. Arrays are
    numpy float32. Thread-safe: encoding takes a lock; the cache is checked and filled under it.
    """

    def __init__(self, folder: str | os.PathLike[str] = MODEL_DIR, *, cache_size: int = 512,
                 threads: int | None = None) -> None:
        try:
            import numpy as np
            import onnxruntime as ort
            from safetensors import safe_open
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise OfflineModelError(
                f"the offline model needs onnxruntime, tokenizers, safetensors and numpy ({exc.name} is missing): "
                "pip install 'purple[offline]'"
            ) from None
        self.folder = Path(folder)
        self.settings = read_settings(self.folder)
        for needed in REQUIRED_FILES:
            if not (self.folder / needed).is_file():
                raise OfflineModelError(f"{self.folder} has no {needed}")
        try:
            self.config: dict[str, Any] = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
            _, _, header_sha = read_header(self.folder / WEIGHTS_FILE)
            self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            tensors: dict[str, Any] = {}
            with safe_open(str(self.folder / WEIGHTS_FILE), framework="np") as handle:
                for key in handle.keys():
                    if key.startswith("heads."):
                        tensors[key] = handle.get_tensor(key).astype(np.float32)
        except Exception as exc:  # noqa: BLE001 - tokenizers and safetensors raise plain Exceptions for bad files
            raise OfflineModelError(f"cannot load the offline model from {self.folder}: {exc}") from None
        vocabulary = int(self.config.get("vocab_size", self.tokenizer.get_vocab_size()))
        self.heads: dict[str, tuple[Any, Any, Any]] = {}
        for name in self.settings.get("heads", {}):
            weight, bias = tensors.get(f"heads.{name}.weight"), tensors.get(f"heads.{name}.bias")
            if weight is None or bias is None:
                raise OfflineModelError(f"{self.folder}: head {name!r} is named in purple.json but not stored")
            tokens = tensors.get(f"heads.{name}.token_weight")
            if tokens is not None and tokens.shape != (weight.shape[0], vocabulary):
                raise OfflineModelError(f"{self.folder}: head {name!r} token weights do not match the vocabulary")
            self.heads[name] = (weight, bias, tokens)
        self.threads = threads or default_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # errors come back as one OfflineModelError line
        # onnxruntime's worker threads spin briefly between kernels instead of sleeping: waking a sleeping thread for
        # each of the graph's ~40 parallel kernels cost 8 ms per 256-token message after the process sat idle
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        try:
            self.session = ort.InferenceSession(str(self.folder / GRAPH_FILE), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types for any bad file
            detail = " ".join(str(exc).split()).rsplit(" : ", 1)[-1][:200] or type(exc).__name__
            raise OfflineModelError(f"cannot load the offline model from {self.folder}: {GRAPH_FILE} does not fit "
                                    f"{WEIGHTS_FILE} or is damaged ({detail})") from None
        written_for = self.session.get_modelmeta().custom_metadata_map.get(HEADER_KEY)
        if written_for != header_sha:
            raise OfflineModelError(f"{self.folder}: {GRAPH_FILE} was written for another {WEIGHTS_FILE}; rewrite it "
                                    "with purple.offline.graph.write_graph")
        self.window = int(self.settings.get("window", 128))
        self.overlap = int(self.settings.get("overlap", 32))
        positions = int(self.config.get("max_position_embeddings", 512))
        if not 2 < self.window <= positions or not 0 <= self.overlap < self.window - 2:
            raise OfflineModelError(f"{self.folder}: purple.json's window {self.window} / overlap {self.overlap} "
                                    f"do not fit the encoder's {positions} positions")
        cls_id, sep_id = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise OfflineModelError(f"{self.folder}: the tokenizer has no [CLS] / [SEP] tokens")
        self.cls_id, self.sep_id = int(cls_id), int(sep_id)
        self._cache: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.cache_size = cache_size
        """Window vectors kept for reuse (0: none; benchmarks turn it off to time real work)."""
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    # ------------------------------------------------------------------------------------------- windows
    def token_ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def windows(self, text: str) -> list[list[int]]:
        """[CLS] + body + [SEP] windows of `window` tokens overlapping by `overlap`; at least one (maybe empty body)."""
        ids = self.token_ids(text)
        body = self.window - 2
        return [[self.cls_id, *ids[s : s + body], self.sep_id] for s in window_starts(len(ids), body, self.overlap)]

    # ------------------------------------------------------------------------------------------- vectors
    def embed(self, windows: Sequence[Sequence[int]]) -> Any:
        """Mean-pooled encoder output per window, a float32 array (len(windows), dim).

        Each window is encoded on its own: the int8 matmuls scale their input per call, so encoding windows together
        would make a window's vector (and a text's score) depend on what it was batched with. Batching gained at most
        1.3x here; identical windows are encoded once."""
        import numpy as np

        out = np.zeros((len(windows), self.dim), dtype=np.float32)
        with self._lock:
            done: dict[tuple[int, ...], Any] = {}
            for row, window in enumerate(windows):
                key = tuple(window)
                vector = done.get(key)
                if vector is None:
                    vector = self._cache.get(key)
                    if vector is not None:
                        self._cache.move_to_end(key)
                    else:
                        ids = np.asarray([key], dtype=np.int64)
                        vector = self.session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
                        if self.cache_size > 0:
                            self._cache[key] = vector
                            if len(self._cache) > self.cache_size:
                                self._cache.popitem(last=False)
                    done[key] = vector
                out[row] = vector
        return out

    def head_scores(self, head: str, vectors: Any, windows: Sequence[Sequence[int]] | None = None,
                    temperature: float = 1.0) -> Any:
        """Sigmoid scores (rows, outputs) of a named head on `embed` vectors of `windows` (logits divided by
        `temperature` first: above 1 softens the scores, below 1 sharpens them).

        A head is linear in the unit-normalised vector and, when it has token weights, in the window's bag of
        tokens (`token_bag`); such a head needs the windows themselves."""
        import numpy as np

        if head not in self.heads:
            raise OfflineModelError(f"{self.folder} has no {head!r} head (has: {', '.join(self.heads) or 'none'})")
        weight, bias, tokens = self.heads[head]
        vectors = np.asarray(vectors, dtype=np.float32)
        normed = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
        logits = normed @ weight.T + bias
        if tokens is not None:
            if windows is None or len(windows) != len(vectors):
                raise ValueError(f"the {head!r} head reads the windows' tokens: pass one window per vector")
            for row, window in enumerate(windows):
                distinct, value = token_bag(window)
                if distinct:
                    logits[row] += tokens[:, distinct].sum(axis=1) * value
        with np.errstate(over="ignore"):  # a small temperature saturates scores at 0 or 1, as it should
            return 1.0 / (1.0 + np.exp(-logits / temperature))

    def head_outputs(self, head: str) -> list[str]:
        """The names of a head's outputs (for example ["unsafe", "S1", ...])."""
        return list(self.settings.get("heads", {}).get(head, {}).get("outputs", []))


_SHARED: dict[str, SharedEncoder] = {}
_SHARED_LOCK = threading.Lock()


def shared_encoder(folder: str | os.PathLike[str] = MODEL_DIR) -> SharedEncoder:
    """One SharedEncoder per folder per process (the detectors built on it share its vectors and cache)."""
    key = str(Path(folder).resolve())
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = SharedEncoder(folder)
        return _SHARED[key]


def is_model_available(folder: Path = MODEL_DIR) -> bool:
    return all((folder / name).is_file() for name in REQUIRED_FILES)
