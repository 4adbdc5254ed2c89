"""The frozen sentence encoder that Purple's offline classifiers share.

The shipped folder (`purple/offline/model/`) holds one `model.safetensors` with the first layers of all-MiniLM-L6-v2
(pretrained weights, unchanged, stored as int8 with one float16 scale per row) and small linear heads on its
mean-pooled output and the window's bag of tokens: one for prompt injection / jailbreak, one for content safety
(unsafe + S1..S14). Both heads read the same vector, so a text is encoded once and every head scores it; `SharedEncoder` keeps a small cache of recent
window vectors so two detectors asking about the same message (the firewall runs them side by side) pay once.

Runs on CPU with torch's dynamic int8 quantisation of the linear layers; needs torch, transformers and safetensors
(`purple[local]`), never the network.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODEL_DIR = Path(__file__).resolve().parent / "model"
SCALE_SUFFIX = ".__scale"
"""A tensor stored as int8 has a float16 per-row scale under its name plus this suffix."""


class OfflineModelError(RuntimeError):
    """The shipped model folder is missing, incomplete or unreadable: one readable line."""


def quantize_rows(tensor: Any) -> tuple[Any, Any]:
    """(int8 tensor, float16 per-row scale) of a 2-D float tensor: symmetric, one scale per row."""
    import torch

    scale = tensor.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
    return torch.round(tensor / scale).clamp(-127, 127).to(torch.int8), scale.to(torch.float16)


def pack_state(state: dict[str, Any], min_elements: int = 4096) -> dict[str, Any]:
    """A state dict as stored on disk: big 2-D weights as int8 + scales, everything else float16."""
    import torch

    packed: dict[str, Any] = {}
    for name, tensor in state.items():
        tensor = tensor.detach().float().contiguous()
        if tensor.dim() == 2 and tensor.numel() >= min_elements:
            q, scale = quantize_rows(tensor)
            packed[name], packed[name + SCALE_SUFFIX] = q.contiguous(), scale.contiguous()
        else:
            packed[name] = tensor.to(torch.float16)
    return packed


def unpack_state(packed: dict[str, Any]) -> dict[str, Any]:
    """The float32 state dict back from `pack_state`'s form."""
    import torch

    state: dict[str, Any] = {}
    for name, tensor in packed.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = packed.get(name + SCALE_SUFFIX)
        state[name] = tensor.float() * scale.float() if scale is not None else tensor.float()
    return state


def read_settings(folder: Path) -> dict[str, Any]:
    path = folder / "purple.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OfflineModelError(f"{folder} is not a Purple offline model (no purple.json)") from None
    except (OSError, ValueError) as exc:
        raise OfflineModelError(f"cannot read {path}: {exc}") from None


class SharedEncoder:
    """Tokeniser + truncated MiniLM encoder + linear heads, loaded from one folder.

    `windows(text)` cuts a (normalised) text into token windows; `embed(windows)` returns their mean-pooled vectors
    (cached); `head_scores(name, vectors, windows)` applies a head (sigmoid of a linear map) per row.
    Thread-safe: encoding takes a lock; the cache is checked and filled under it.
    """

    def __init__(self, folder: str | os.PathLike[str] = MODEL_DIR, *, quantize: bool = True, cache_size: int = 512,
                 threads: int | None = None) -> None:
        try:
            import torch
            from safetensors import SafetensorError
            from safetensors.torch import load_file
            from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise OfflineModelError(
                f"the offline model needs torch and transformers ({exc.name} is missing): pip install 'purple[local]'"
            ) from None
        self.folder = Path(folder)
        self.settings = read_settings(self.folder)
        for needed in ("model.safetensors", "tokenizer.json", "config.json"):
            if not (self.folder / needed).is_file():
                raise OfflineModelError(f"{self.folder} has no {needed}")
        try:
            config = BertConfig.from_dict(json.loads((self.folder / "config.json").read_text(encoding="utf-8")))
            packed = load_file(str(self.folder / "model.safetensors"))
            self.tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(self.folder / "tokenizer.json"))
        except (OSError, ValueError, SafetensorError) as exc:
            raise OfflineModelError(f"cannot load the offline model from {self.folder}: {exc}") from None
        state = unpack_state(packed)
        encoder_state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        self.heads: dict[str, tuple[Any, Any, Any]] = {}
        for name in self.settings.get("heads", {}):
            weight, bias = state.get(f"heads.{name}.weight"), state.get(f"heads.{name}.bias")
            if weight is None or bias is None:
                raise OfflineModelError(f"{self.folder}: head {name!r} is named in purple.json but not stored")
            tokens = state.get(f"heads.{name}.token_weight")
            if tokens is not None and tokens.shape != (weight.shape[0], config.vocab_size):
                raise OfflineModelError(f"{self.folder}: head {name!r} token weights do not match the vocabulary")
            self.heads[name] = (weight, bias, tokens)
        model = BertModel(config, add_pooling_layer=False)
        missing, unexpected = model.load_state_dict(encoder_state, strict=False)
        missing = [m for m in missing if not m.endswith("position_ids")]
        if missing or unexpected:
            raise OfflineModelError(f"{self.folder}: encoder weights do not match config.json "
                                    f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        model.eval()
        if quantize:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.window = int(self.settings.get("window", 128))
        self.overlap = int(self.settings.get("overlap", 32))
        self.cls_id = self.tokenizer.convert_tokens_to_ids("[CLS]")
        self.sep_id = self.tokenizer.convert_tokens_to_ids("[SEP]")
        self.threads = threads
        self._cache: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.cache_size = cache_size
        """Window vectors kept for reuse (0: none; benchmarks turn it off to time real work)."""
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    # ------------------------------------------------------------------------------------------- windows
    def token_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])

    def windows(self, text: str) -> list[list[int]]:
        """[CLS] + body + [SEP] windows of `window` tokens overlapping by `overlap`; at least one (maybe empty body)."""
        ids = self.token_ids(text)
        body = self.window - 2
        step = body - self.overlap
        starts = [0] if len(ids) <= body else list(range(0, len(ids) - self.overlap, step))
        if len(ids) > body and starts[-1] + body < len(ids):
            starts.append(len(ids) - body)
        return [[self.cls_id, *ids[s : s + body], self.sep_id] for s in starts]

    # ------------------------------------------------------------------------------------------- vectors
    def embed(self, windows: Sequence[Sequence[int]], batch_tokens: int = 8192) -> Any:
        """Mean-pooled encoder output per window, a float32 tensor (len(windows), dim)."""
        import torch

        out = torch.zeros((len(windows), self.dim), dtype=torch.float32)
        with self._lock:
            todo: dict[tuple[int, ...], list[int]] = {}
            for row, window in enumerate(windows):
                key = tuple(window)
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
                    out[row] = cached
                else:
                    todo.setdefault(key, []).append(row)
            keys = sorted(todo, key=len)
            start = 0
            previous_threads = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                with torch.inference_mode():
                    while start < len(keys):
                        end = start + 1
                        while end < len(keys) and (end - start + 1) * len(keys[end]) <= batch_tokens:
                            end += 1
                        batch = keys[start:end]
                        width = len(batch[-1])
                        ids = torch.zeros((len(batch), width), dtype=torch.long)
                        mask = torch.zeros((len(batch), width), dtype=torch.long)
                        for i, key in enumerate(batch):
                            ids[i, : len(key)] = torch.tensor(key, dtype=torch.long)
                            mask[i, : len(key)] = 1
                        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                        weights = mask.unsqueeze(-1).float()
                        pooled = (hidden * weights).sum(1) / weights.sum(1)
                        for i, key in enumerate(batch):
                            vector = pooled[i].clone()
                            for row in todo[key]:
                                out[row] = vector
                            if self.cache_size > 0:
                                self._cache[key] = vector
                                if len(self._cache) > self.cache_size:
                                    self._cache.popitem(last=False)
                        start = end
            finally:
                if self.threads:
                    torch.set_num_threads(previous_threads)
        return out

    def head_scores(self, head: str, vectors: Any, windows: Sequence[Sequence[int]] | None = None) -> Any:
        """Sigmoid scores (rows, outputs) of a named head on `embed` vectors of `windows`.

        A head is linear in the unit-normalised vector and, when it has token weights, in the window's bag of
        tokens (each distinct token of the window body counts 1/sqrt(distinct tokens)); such a head needs the
        windows themselves."""
        import torch

        if head not in self.heads:
            raise OfflineModelError(f"{self.folder} has no {head!r} head (has: {', '.join(self.heads) or 'none'})")
        weight, bias, tokens = self.heads[head]
        normed = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-8)
        logits = normed @ weight.T + bias
        if tokens is not None:
            if windows is None or len(windows) != len(vectors):
                raise ValueError(f"the {head!r} head reads the windows' tokens: pass one window per vector")
            for row, window in enumerate(windows):
                distinct = sorted(set(window[1:-1]))
                if distinct:
                    index = torch.tensor(distinct, dtype=torch.long)
                    logits[row] += tokens[:, index].sum(dim=1) / len(distinct) ** 0.5
        return torch.sigmoid(logits)

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
    return all((folder / name).is_file() for name in ("model.safetensors", "tokenizer.json", "config.json",
                                                       "purple.json"))
