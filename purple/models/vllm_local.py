"""In-process vLLM for large local runs (the optional `vllm` extra, a CUDA GPU). Imported only when asked for."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from purple.models.base import GenerationParams, ModelError, TokenProbs
from purple.models.hf import first_line, offline, resolve_local, word_token_ids
from purple.models.images import load_pil
from purple.types import Completion, Conversation


class VLLMModel:
    """A model run by vLLM's offline engine: continuous batching and prefix caching inside one process."""

    def __init__(
        self,
        name_or_path: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.85,
        tensor_parallel_size: int = 1,
        max_logprobs: int = 20,
    ) -> None:
        offline()
        try:
            import vllm
        except ImportError:
            raise ModelError("vllm: models need the optional extra: pip install 'purple[vllm]' (and a CUDA GPU)") from None
        self._vllm = vllm
        self.name = f"vllm:{name_or_path}"
        self.path = resolve_local(name_or_path)
        self.max_logprobs = max_logprobs
        try:
            self.llm = vllm.LLM(
                model=self.path,
                dtype=dtype,
                max_model_len=max_model_len,
                gpu_memory_utilization=gpu_memory_utilization,
                tensor_parallel_size=tensor_parallel_size,
                max_logprobs=max_logprobs,
                enable_prefix_caching=True,
                load_format="safetensors",
            )
        except Exception as exc:  # noqa: BLE001 - engine start-up failures are many; show the first line
            raise ModelError(f"vLLM could not load {name_or_path}: {first_line(exc)}") from None
        self.tokenizer = self.llm.get_tokenizer()
        self._word_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}

    def close(self) -> None:
        del self.llm

    def _sampling(self, params: GenerationParams, logprobs: int | None = None) -> Any:
        return self._vllm.SamplingParams(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=list(params.stop) or None,
            logprobs=logprobs if logprobs is not None else (params.top_logprobs or None),
        )

    def _inputs(self, prompt: str, images: Sequence[str]) -> dict[str, Any]:
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        item: dict[str, Any] = {"prompt_token_ids": ids}
        if images:
            item["multi_modal_data"] = {"image": [load_pil(ref) for ref in images]}
        return item

    def first_token_probs(
        self, prompts: Sequence[str], words: Sequence[str], images: Sequence[Sequence[str]] | None = None
    ) -> list[TokenProbs]:
        """P(next token starts each word) from the top `max_logprobs` of one generated token."""
        if tuple(words) not in self._word_ids:
            self._word_ids[tuple(words)] = word_token_ids(self.tokenizer, words)
        word_ids = self._word_ids[tuple(words)]
        params = GenerationParams(max_tokens=1)
        outputs = self._run(prompts, images, self._sampling(params, logprobs=self.max_logprobs))
        results = []
        for out in outputs:
            if isinstance(out, str):
                results.append(TokenProbs({}, out))
                continue
            first = out.outputs[0].logprobs[0] if out.outputs and out.outputs[0].logprobs else {}
            results.append(
                TokenProbs({w: sum(math.exp(first[i].logprob) for i in ids if i in first) for w, ids in word_ids.items()})
            )
        return results

    def _run(self, prompts: Sequence[str], images: Sequence[Sequence[str]] | None, sampling: Any) -> list[Any]:
        """Generate for every prompt; an item that cannot be prepared or run is returned as its error text."""
        prepared: list[dict[str, Any] | str] = []
        for i, prompt in enumerate(prompts):
            try:
                prepared.append(self._inputs(prompt, images[i] if images else ()))
            except (ValueError, OSError) as exc:
                prepared.append(f"cannot prepare this item: {first_line(exc)}")
        runnable = [p for p in prepared if not isinstance(p, str)]
        try:
            done = iter(self.llm.generate(runnable, sampling, use_tqdm=False)) if runnable else iter(())
        except Exception as exc:  # noqa: BLE001 - retry one by one to isolate the failing item
            if len(runnable) <= 1:
                return [p if isinstance(p, str) else f"vLLM failed: {first_line(exc)}" for p in prepared]
            return [self._run([prompts[i]], [images[i]] if images else None, sampling)[0] for i in range(len(prompts))]
        return [p if isinstance(p, str) else next(done) for p in prepared]

    def complete(
        self, prompts: Sequence[str], params: GenerationParams | None = None, images: Sequence[Sequence[str]] | None = None
    ) -> list[Completion]:
        params = params or GenerationParams()
        started = time.perf_counter()
        outputs = self._run(prompts, images, self._sampling(params))
        latency = (time.perf_counter() - started) / max(1, len(prompts))
        return [self._completion(out, latency) for out in outputs]

    async def acomplete(
        self, prompts: Sequence[str], params: GenerationParams | None = None, images: Sequence[Sequence[str]] | None = None
    ) -> list[Completion]:
        return await asyncio.to_thread(self.complete, prompts, params, images)

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams | None = None) -> list[Completion]:
        params = params or GenerationParams()
        started = time.perf_counter()
        batch = [[{"role": m.role, "content": m.content} for m in c] for c in conversations]
        try:
            outputs: list[Any] = list(self.llm.chat(batch, self._sampling(params), use_tqdm=False))
        except Exception as exc:  # noqa: BLE001
            return [Completion("", error=f"vLLM chat failed: {first_line(exc)}") for _ in conversations]
        latency = (time.perf_counter() - started) / max(1, len(conversations))
        return [self._completion(out, latency) for out in outputs]

    async def agenerate(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[Completion]:
        return await asyncio.to_thread(self.generate, conversations, params)

    def _completion(self, out: Any, latency: float) -> Completion:
        if isinstance(out, str):
            return Completion("", latency_s=latency, error=out)
        choice = out.outputs[0]
        logprobs = tokens = None
        if choice.logprobs:
            logprobs = tuple(
                {str(lp.decoded_token): float(lp.logprob) for lp in step.values()} for step in choice.logprobs
            )
            tokens = tuple(self.tokenizer.decode([t]) for t in choice.token_ids)
        usage = {"prompt_tokens": len(out.prompt_token_ids or ()), "completion_tokens": len(choice.token_ids)}
        return Completion(choice.text, logprobs, usage, latency, None, tokens)
