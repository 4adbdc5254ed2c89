"""`load_model(spec)`: one function from a spec string to a ChatModel. The registry is the dict below."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from purple.models.base import ChatModel, ModelError
from purple.models.spec import ModelSpec, parse_spec, resolve_key


def _hf(spec: ModelSpec, options: dict[str, Any]) -> ChatModel:
    from purple.models.hf import HFModel

    return HFModel(spec.model, **options)


def _vllm(spec: ModelSpec, options: dict[str, Any]) -> ChatModel:
    from purple.models.vllm_local import VLLMModel

    return VLLMModel(spec.model, **options)


def _openai(spec: ModelSpec, options: dict[str, Any]) -> ChatModel:
    from purple.models.openai_api import OpenAIModel

    options = dict(options)
    base_url = options.pop("base_url", None) or spec.base_url
    key = resolve_key(spec, options.pop("api_key_env", None))
    return OpenAIModel(spec.model, base_url or "", key, provider=spec.provider, **options)


_BACKENDS: dict[str, Callable[[ModelSpec, dict[str, Any]], ChatModel]] = {
    "hf": _hf,
    "vllm": _vllm,
    "openai": _openai,
    "ollama": _openai,
}

# Options each backend understands; anything else is a usage error rather than a silent no-op.
OPTIONS: dict[str, frozenset[str]] = {
    "hf": frozenset({"dtype", "device", "batch_size", "max_input_tokens", "prefix_cache"}),
    "vllm": frozenset({"dtype", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "max_logprobs"}),
    "openai": frozenset({"base_url", "api_key_env", "concurrency", "timeout_s", "retries", "backoff_s", "max_backoff_s"}),
}
OPTIONS["ollama"] = OPTIONS["openai"]


def load_model(spec: str, **options: Any) -> ChatModel:
    """Load the model a spec names: `hf:PATH_OR_ID`, `openai:MODEL`, `ollama:MODEL`, `vllm:PATH`, or
    `PROVIDER::MODEL::KEY[::BASE_URL]`. Options not set (None) are left to the backend's defaults.
    Raises ModelError with one readable line.
    """
    parsed = parse_spec(spec)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - OPTIONS[parsed.provider])
    if unknown:
        raise ModelError(f"option(s) {', '.join(unknown)} do not apply to {parsed.provider}: models")
    return _BACKENDS[parsed.provider](parsed, given)
