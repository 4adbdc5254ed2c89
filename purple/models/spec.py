"""Model specs: `hf:PATH`, `openai:MODEL`, `ollama:MODEL`, `vllm:PATH` and CyberSecEval's `PROVIDER::MODEL::KEY[::URL]`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from purple.models.base import ModelError
from purple.models.secrets import Secret, redact

PROVIDERS = ("hf", "openai", "ollama", "vllm")

OPENAI_URL = "https://api.openai.com/v1"
OLLAMA_URL = "http://127.0.0.1:11434/v1"

# CyberSecEval provider names that speak the OpenAI protocol: (our provider, default base URL, key variable).
_CSE_PROVIDERS: dict[str, tuple[str, str, str]] = {
    "OPENAI": ("openai", OPENAI_URL, "OPENAI_API_KEY"),
    "TOGETHER": ("openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "LLAMA": ("openai", "https://api.llama.com/compat/v1", "LLAMA_API_KEY"),
    "GROQ": ("openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "OLLAMA": ("ollama", OLLAMA_URL, "OLLAMA_API_KEY"),
    "VLLM": ("openai", "http://127.0.0.1:8000/v1", "VLLM_API_KEY"),
    "HF": ("hf", "", ""),
}
_NOT_OPENAI = {"ANTHROPIC", "GOOGLEGENAI", "FTGOOGLEGENAI"}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec. `api_key` is a Secret; `display` is safe to print (no key)."""

    provider: str
    model: str
    base_url: str | None = None
    api_key: Secret | None = None
    api_key_env: str | None = None

    @property
    def display(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec; raise ModelError with one clear line (never echoing a key) when it is malformed."""
    spec = spec.strip()
    if "::" in spec:
        return _parse_cse(spec)
    provider, sep, model = spec.partition(":")
    provider = provider.lower()
    if not sep or provider not in PROVIDERS:
        raise ModelError(
            f"bad model spec {spec!r}: expected one of {', '.join(p + ':NAME' for p in PROVIDERS)} "
            "or PROVIDER::MODEL::KEY[::BASE_URL]"
        )
    if not model.strip():
        raise ModelError(f"bad model spec {spec!r}: the model name after {provider}: is empty")
    key_env = {"openai": "OPENAI_API_KEY", "ollama": "OLLAMA_API_KEY"}.get(provider)
    base = {"openai": OPENAI_URL, "ollama": OLLAMA_URL}.get(provider)
    return ModelSpec(provider, model.strip(), base_url=base, api_key_env=key_env)


def _parse_cse(spec: str) -> ModelSpec:
    parts = spec.split("::")
    provider_name = parts[0].strip().upper()
    key_text = parts[2] if len(parts) > 2 else ""
    shown = "::".join(parts[:2] + (["***"] if len(parts) > 2 else []) + parts[3:4])
    if not 2 <= len(parts) <= 4:
        raise ModelError(f"bad model spec {redact(shown, key_text)!r}: expected PROVIDER::MODEL::KEY[::BASE_URL]")
    if provider_name in _NOT_OPENAI:
        raise ModelError(
            f"provider {provider_name} has no OpenAI-compatible API here; "
            "use OPENAI::MODEL::KEY::BASE_URL with the provider's OpenAI-compatible URL"
        )
    if provider_name not in _CSE_PROVIDERS:
        # the provider alone: in a mistyped spec ("OPENAI:gpt-4o::KEY") the second part may be the key
        raise ModelError(f"unknown provider {provider_name!r} in a PROVIDER::MODEL::KEY spec; "
                         f"known: {', '.join(_CSE_PROVIDERS)}")
    provider, base_url, key_env = _CSE_PROVIDERS[provider_name]
    model = parts[1].strip()
    if not model:
        raise ModelError(f"bad model spec {shown!r}: the model name is empty")
    if len(parts) == 4 and parts[3].strip():
        base_url = parts[3].strip()
    key_text = key_text.strip()
    if key_text.startswith("$") or key_text.startswith("env:"):
        key_env = key_text.removeprefix("$").removeprefix("env:")
        return ModelSpec(provider, model, base_url or None, api_key_env=key_env)
    if key_text:
        return ModelSpec(provider, model, base_url or None, api_key=Secret(key_text), api_key_env=key_env)
    return ModelSpec(provider, model, base_url or None, api_key_env=key_env)


def resolve_key(spec: ModelSpec, api_key_env: str | None = None) -> Secret:
    """The key for an API spec: the literal one from the spec, else the named environment variable, else none."""
    if spec.api_key:
        return spec.api_key
    name = api_key_env or spec.api_key_env
    return Secret(os.environ.get(name, "")) if name else Secret("")
