"""Local models through transformers: chat templates, batched generation with left padding, first-token scoring.

Weights load from a local folder or an already-present Hugging Face cache (a hub id is only a name for that
cache; nothing downloads) and only from safetensors files. torch and transformers are imported when a model is
loaded, never at `import purple`.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from purple.models.base import GenerationParams, ModelError, TokenProbs
from purple.models.images import load_pil
from purple.types import Completion, Conversation

DTYPES = ("auto", "float32", "bfloat16", "float16")
MIN_SHARED_PREFIX = 32
"""Prompts sharing at least this many leading tokens reuse one computed prefix (the Llama Guard preamble)."""
_PREFIX_CACHE_SIZE = 4
_PREFIX_CACHE_TYPES = {"llama", "llama4", "llama4_text", "mllama"}


def offline() -> None:
    """Make sure nothing from the Hugging Face stack reaches the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def import_torch() -> Any:
    """torch, or a ModelError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise ModelError(
            "local models need torch and transformers: pip install torch==2.13.0 && pip install 'purple[local]'"
        ) from None
    return torch


class HFModel:
    """A causal or image-text-to-text model loaded with transformers."""

    def __init__(
        self,
        name_or_path: str,
        *,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
        max_input_tokens: int | None = None,
        prefix_cache: bool = True,
    ) -> None:
        offline()
        self.path = resolve_local(name_or_path)
        torch = import_torch()
        try:
            import transformers
        except ImportError:
            raise ModelError("local models need transformers: pip install 'purple[local]'") from None
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        if dtype not in DTYPES:
            raise ModelError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
        self.name = f"hf:{name_or_path}"
        self.device = _device(torch, device)
        torch_dtype = _torch_dtype(torch, dtype, self.device)
        self.batch_size = max(1, batch_size)
        self.prefix_cache = prefix_cache
        # Async callers may overlap (several batches in flight); the model runs one batch at a time.
        self._lock = threading.RLock()
        self._prefixes: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._word_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}
        self._torch = torch
        load = {"local_files_only": True}
        try:
            self.config = transformers.AutoConfig.from_pretrained(self.path, **load)
            self.multimodal = hasattr(self.config, "vision_config")
            self.processor: Any = None
            self.image_error: str | None = None
            if self.multimodal:
                try:
                    self.processor = transformers.AutoProcessor.from_pretrained(self.path, **load)
                    tokenizer = self.processor.tokenizer
                except (ImportError, OSError, ValueError) as exc:  # e.g. Llama 4's image processor needs torchvision
                    self.image_error = f"images unavailable for {self.name}: {first_line(exc)[:160]}"
                    tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, **load)
                auto = transformers.AutoModelForImageTextToText
            else:
                tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, **load)
                auto = transformers.AutoModelForCausalLM
            model = auto.from_pretrained(self.path, dtype=torch_dtype, use_safetensors=True, **load)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load {name_or_path}: {first_line(exc)}") from None
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        text_config = getattr(self.config, "text_config", self.config)
        self.model_type = str(getattr(self.config, "model_type", ""))
        limit = getattr(text_config, "max_position_embeddings", None) or 131072
        self.max_input_tokens = max_input_tokens or min(int(limit), 131072)
        self.stop_ids = _stop_ids(tokenizer, model)

    def __repr__(self) -> str:
        return f"HFModel({self.name!r}, device={self.device!r})"

    def close(self) -> None:
        self._prefixes.clear()

    # ------------------------------------------------------------------------------------ first-token scoring
    def first_token_probs(
        self, prompts: Sequence[str], words: Sequence[str], images: Sequence[Sequence[str]] | None = None
    ) -> list[TokenProbs]:
        """P(next token starts each word) for raw prompts, in batched forward passes (no generation loop)."""
        with self._lock:
            return self._first_token_probs(prompts, words, images)

    def _first_token_probs(
        self, prompts: Sequence[str], words: Sequence[str], images: Sequence[Sequence[str]] | None
    ) -> list[TokenProbs]:
        torch = self._torch
        key = tuple(words)
        if key not in self._word_ids:
            self._word_ids[key] = word_token_ids(self.tokenizer, words)
        word_ids = self._word_ids[key]
        results: list[TokenProbs | None] = [None] * len(prompts)
        text_items: list[tuple[int, list[int]]] = []
        image_items: list[int] = []
        for i, prompt in enumerate(prompts):
            if images and images[i]:
                image_items.append(i)
                continue
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if len(ids) > self.max_input_tokens:
                results[i] = TokenProbs({}, f"prompt is {len(ids)} tokens; the limit is {self.max_input_tokens}")
            else:
                text_items.append((i, ids))

        def probs_of(logits: Any) -> list[dict[str, float]]:
            p = torch.softmax(logits.float(), dim=-1)
            return [{w: float(p[row, ids].sum()) for w, ids in word_ids.items()} for row in range(p.shape[0])]

        # Batch prompts that share their opening together (the prefix cache needs it), then by length.
        text_items.sort(key=lambda item: (item[1][:MIN_SHARED_PREFIX * 2], len(item[1])))
        for start in range(0, len(text_items), self.batch_size):
            chunk = text_items[start : start + self.batch_size]
            for (i, _), outcome in zip(chunk, self._isolate(chunk, lambda c: probs_of(self._last_logits([x[1] for x in c])))):
                results[i] = outcome
        for start in range(0, len(image_items), self.batch_size):
            chunk_i = image_items[start : start + self.batch_size]
            pairs = [(i, prompts[i], images[i]) for i in chunk_i]  # type: ignore[index]
            for i, outcome in zip(chunk_i, self._isolate(pairs, lambda c: probs_of(self._image_logits(c)))):
                results[i] = outcome
        return [r if r is not None else TokenProbs({}, "not scored") for r in results]

    def _isolate(self, chunk: list[Any], run: Any) -> list[TokenProbs]:
        """Run a batch; if it fails, run its items one by one so one bad item is an error on that item only."""
        try:
            with self._torch.inference_mode():
                return [TokenProbs(p) for p in run(chunk)]
        except Exception as exc:  # noqa: BLE001 - any failure becomes an error on the item(s)
            if len(chunk) == 1:
                return [TokenProbs({}, f"model failed on this item: {first_line(exc)}")]
            return [self._isolate([item], run)[0] for item in chunk]

    def _last_logits(self, rows: list[list[int]]) -> Any:
        """Next-token logits after each row of token ids: one forward pass, left padding, shared prefix reused."""
        torch = self._torch
        prefix = self._shared_prefix(rows)
        offset = len(prefix) if prefix else 0
        width = max(len(r) for r in rows) - offset
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), offset + width), dtype=torch.long)
        mask[:, :offset] = 1
        for row, tokens in enumerate(rows):
            tail = tokens[offset:]
            ids[row, width - len(tail) :] = torch.tensor(tail, dtype=torch.long)
            mask[row, offset + width - len(tail) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, offset:]
        kwargs: dict[str, Any] = {}
        if prefix:
            cache = copy.deepcopy(self._prefixes[prefix])
            cache.batch_repeat_interleave(len(rows))
            kwargs["past_key_values"] = cache
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=bool(prefix),
            logits_to_keep=1,
            **kwargs,
        )
        return out.logits[:, -1, :]

    def _shared_prefix(self, rows: list[list[int]]) -> tuple[int, ...] | None:
        """A cached (or newly computed) prefix that every row starts with and extends, or None."""
        if not self.prefix_cache or self.model_type not in _PREFIX_CACHE_TYPES:
            return None
        shortest = min(len(r) for r in rows)
        for prefix in self._prefixes:
            n = len(prefix)
            if n < shortest and all(tuple(r[:n]) == prefix for r in rows):
                self._prefixes.move_to_end(prefix)
                return prefix
        if len(rows) < 2:
            return None
        n = 0
        first = rows[0]
        while n < shortest - 1 and all(r[n] == first[n] for r in rows):
            n += 1
        if n < MIN_SHARED_PREFIX:
            return None
        prefix = tuple(first[:n])
        torch = self._torch
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1)
        self._prefixes[prefix] = out.past_key_values
        while len(self._prefixes) > _PREFIX_CACHE_SIZE:
            self._prefixes.popitem(last=False)
        return prefix

    def _image_logits(self, items: list[tuple[int, str, Sequence[str]]]) -> Any:
        if self.processor is None:
            raise ValueError(self.image_error or f"{self.name} takes no images")
        inputs = self.processor(
            text=[prompt for _, prompt, _ in items],
            images=[[load_pil(ref) for ref in refs] for _, _, refs in items],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        mask = inputs["attention_mask"]
        if mask.shape[1] > self.max_input_tokens:
            raise ValueError(f"prompt is {mask.shape[1]} tokens; the limit is {self.max_input_tokens}")
        inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return self.model(**inputs, use_cache=False, logits_to_keep=1).logits[:, -1, :]

    # -------------------------------------------------------------------------------------------- generation
    def generate(self, conversations: Sequence[Conversation], params: GenerationParams | None = None) -> list[Completion]:
        """Answer conversations: the model's chat template, then batched generation."""
        prompts: list[str] = []
        images: list[list[str]] = []
        errors: dict[int, str] = {}
        for i, conversation in enumerate(conversations):
            try:
                prompts.append(self._chat_prompt(conversation))
            except Exception as exc:  # noqa: BLE001 - a template may reject a conversation; that item fails
                errors[i] = f"chat template failed: {first_line(exc)}"
                prompts.append("")
            images.append([ref for m in conversation for ref in m.images])
        done = self.complete(prompts, params, images)
        return [Completion("", error=errors[i]) if i in errors else c for i, c in enumerate(done)]

    async def agenerate(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[Completion]:
        return await asyncio.to_thread(self.generate, conversations, params)

    def complete(
        self, prompts: Sequence[str], params: GenerationParams | None = None, images: Sequence[Sequence[str]] | None = None
    ) -> list[Completion]:
        """Continue raw prompts (special tokens written out) in left-padded batches."""
        with self._lock:
            return self._complete(prompts, params, images)

    def _complete(
        self, prompts: Sequence[str], params: GenerationParams | None, images: Sequence[Sequence[str]] | None
    ) -> list[Completion]:
        params = params or GenerationParams()
        out: list[Completion | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, completion in zip(chunk, self._complete_isolated(chunk, prompts, params, images)):
                out[i] = completion
        return [c if c is not None else Completion("", error="not generated") for c in out]

    async def acomplete(
        self, prompts: Sequence[str], params: GenerationParams | None = None, images: Sequence[Sequence[str]] | None = None
    ) -> list[Completion]:
        return await asyncio.to_thread(self.complete, prompts, params, images)

    def _complete_isolated(
        self, chunk: list[int], prompts: Sequence[str], params: GenerationParams, images: Sequence[Sequence[str]] | None
    ) -> list[Completion]:
        try:
            with self._torch.inference_mode():
                return self._complete_batch([prompts[i] for i in chunk], [list(images[i]) if images else [] for i in chunk], params)
        except Exception as exc:  # noqa: BLE001 - isolate the failing item
            if len(chunk) == 1:
                return [Completion("", error=f"generation failed: {first_line(exc)}")]
            return [self._complete_isolated([i], prompts, params, images)[0] for i in chunk]

    def _complete_batch(self, prompts: list[str], images: list[list[str]], params: GenerationParams) -> list[Completion]:
        started = time.perf_counter()
        if any(images):
            if self.processor is None:
                raise ValueError(self.image_error or f"{self.name} takes no images")
            inputs = self.processor(
                text=prompts,
                images=[[load_pil(r) for r in refs] for refs in images] if all(images) else None,
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
        else:
            inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        width = inputs["input_ids"].shape[1]
        if width > self.max_input_tokens:
            raise ValueError(f"prompt is {width} tokens; the limit is {self.max_input_tokens}")
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        sample = params.temperature > 0
        generated = self.model.generate(
            **inputs,
            max_new_tokens=params.max_tokens,
            do_sample=sample,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None,
            top_k=None,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            stop_strings=list(params.stop) or None,
            tokenizer=self.tokenizer if params.stop else None,
            output_logits=params.top_logprobs > 0,
            return_dict_in_generate=True,
        )
        new = generated.sequences[:, width:]
        latency = (time.perf_counter() - started) / len(prompts)
        completions = []
        for row in range(new.shape[0]):
            raw = [int(t) for t in new[row]]
            ids = _until_stop(raw, {*self.stop_ids, self.tokenizer.pad_token_id})
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            logprobs = tokens = None
            if params.top_logprobs > 0 and generated.logits:
                steps = raw[: len(ids) + 1]  # the stop token, when one ended the answer, has log-probabilities too
                logprobs, tokens = self._top_logprobs(generated.logits, row, steps, params.top_logprobs)
            usage = {"prompt_tokens": int(inputs["attention_mask"][row].sum()), "completion_tokens": len(ids)}
            completions.append(Completion(text, logprobs, usage, latency, None, tokens))
        return completions

    def _top_logprobs(
        self, logits: Sequence[Any], row: int, ids: list[int], k: int
    ) -> tuple[tuple[dict[str, float], ...], tuple[str, ...]]:
        torch = self._torch
        steps: list[dict[str, float]] = []
        for step, token in enumerate(ids):
            logp = torch.log_softmax(logits[step][row].float(), dim=-1)
            values, indices = logp.topk(min(k, logp.shape[-1]))
            top: dict[str, float] = {}
            for value, index in zip(values, indices):
                top.setdefault(self.tokenizer.decode([int(index)]), float(value))
            steps.append(top)
        return tuple(steps), tuple(self.tokenizer.decode([t]) for t in ids)

    def _chat_prompt(self, conversation: Conversation) -> str:
        messages: list[dict[str, Any]] = []
        for m in conversation:
            if m.images:
                parts: list[dict[str, Any]] = [{"type": "image"} for _ in m.images]
                parts.append({"type": "text", "text": m.content})
                messages.append({"role": m.role, "content": parts})
            else:
                messages.append({"role": m.role, "content": m.content})
        owner = self.processor if self.processor is not None else self.tokenizer
        return str(owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))


# ---------------------------------------------------------------------------------------------------- helpers
def word_token_ids(tokenizer: Any, words: Sequence[str]) -> dict[str, list[int]]:
    """Ids of the tokens that can open each word: their text, spacing stripped, starts that word and no other.

    So 'unsafe', ' unsafe' and a split-off 'un' all count for 'unsafe' -- the same rule the API path applies to
    the token strings a server returns, which keeps local and API scores comparable.
    """
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    found: dict[str, list[int]] = {w: [] for w in words}
    for token_id, piece in enumerate(pieces):
        if not isinstance(piece, str):
            continue
        text = piece.replace("\u0120", " ").replace("\u2581", " ").strip().lower()
        if not text:
            continue
        owners = [w for w in words if w.startswith(text)]
        if len(owners) == 1:
            found[owners[0]].append(token_id)
    return found


def resolve_local(name_or_path: str) -> str:
    """A local model folder, or the cached snapshot of a hub id (local files only; never downloads)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{name_or_path} is not a model folder (no config.json)")
        return str(path)
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1
    if looks_like_path:
        raise ModelError(f"model folder not found: {name_or_path}")
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(name_or_path, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss in the cache reads the same to a user
        raise ModelError(
            f"{name_or_path} is not in the local Hugging Face cache (a hub id is only a name for that cache; "
            "nothing downloads): download it yourself or pass a local folder"
        ) from None


def _device(torch: Any, device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but no CUDA GPU is available")
    return device


def _torch_dtype(torch: Any, dtype: str, device: str) -> Any:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def _stop_ids(tokenizer: Any, model: Any) -> list[int]:
    ids: set[int] = set()
    eos = getattr(model.generation_config, "eos_token_id", None)
    for value in (eos if isinstance(eos, list) else [eos]):
        if isinstance(value, int):
            ids.add(value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    for token in ("<|eot_id|>", "<|eot|>", "<|end_of_text|>", "</s>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(ids)


def _until_stop(ids: list[int], stop: set[int]) -> list[int]:
    for n, token in enumerate(ids):
        if token in stop:
            return ids[:n]
    return ids


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
