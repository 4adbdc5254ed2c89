"""Model specs, the CyberSecEval form, and keys that never show."""

from __future__ import annotations

import pytest

from purple.models import ModelError, load_model, parse_spec
from purple.models.secrets import Secret, redact
from purple.models.spec import resolve_key


def test_simple_specs() -> None:
    assert parse_spec("hf:meta-llama/Llama-Guard-3-1B").provider == "hf"
    openai = parse_spec("openai:gpt-4o-mini")
    assert (openai.model, openai.base_url, openai.api_key_env) == ("gpt-4o-mini", "https://api.openai.com/v1", "OPENAI_API_KEY")
    assert parse_spec("ollama:llama-guard3:1b").model == "llama-guard3:1b"
    assert parse_spec("vllm:/models/lg").provider == "vllm"


def test_cyberseceval_form_keeps_the_key_secret() -> None:
    spec = parse_spec("TOGETHER::meta-llama/Llama-Guard-3-8B::sk-live-abcdef123456")
    assert spec.base_url == "https://api.together.xyz/v1" and spec.model == "meta-llama/Llama-Guard-3-8B"
    assert spec.api_key is not None and spec.api_key.reveal() == "sk-live-abcdef123456"
    assert "sk-live" not in repr(spec) and "sk-live" not in spec.display
    custom = parse_spec("OPENAI::lg::$MY_KEY::http://127.0.0.1:8000/v1")
    assert custom.api_key is None and custom.api_key_env == "MY_KEY" and custom.base_url == "http://127.0.0.1:8000/v1"


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-999888777")
    assert resolve_key(parse_spec("openai:x")).reveal() == "sk-env-999888777"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert not resolve_key(parse_spec("openai:x"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "bad model spec"),
        ("gpt:x", "bad model spec"),
        ("hf:", "model name after hf: is empty"),
        ("ANTHROPIC::claude::sk-ant-123456789", "no OpenAI-compatible API"),
        ("NOPE::m::sk-secret-0000111", "unknown provider"),
        ("OPENAI::::sk-secret-0000111", "model name is empty"),
        ("OPENAI::m::sk-secret-0000111::http://x::extra", "expected PROVIDER::MODEL::KEY"),
        # one colon short: the second part is the key
        ("OPENAI:gpt-4o::sk-secret-0000111", "unknown provider 'OPENAI:GPT-4O'"),
    ],
)
def test_bad_specs_are_one_clear_line_without_the_key(spec: str, message: str) -> None:
    with pytest.raises(ModelError, match=message) as caught:
        parse_spec(spec)
    text = str(caught.value)
    assert "\n" not in text and "sk-secret" not in text and "sk-ant" not in text


def test_options_that_do_not_apply_and_bad_urls() -> None:
    with pytest.raises(ModelError, match="dtype do not apply to openai"):
        load_model("openai:x", dtype="bfloat16")
    with pytest.raises(ModelError, match="bad base URL"):
        load_model("openai:x", base_url="ftp://host")
    with pytest.raises(ModelError, match="concurrency must be between 1 and 512"):
        load_model("openai:x", concurrency=100_000)  # a pool per 8 requests: this many would take gigabytes


def test_missing_local_models_are_clear(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(ModelError, match="model folder not found"):
        load_model("hf:/no/such/folder")
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        load_model("hf:meta-llama/Not-A-Cached-Model-xyz")
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(f"hf:{tmp_path}")


def test_vllm_is_an_optional_extra() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ModelError, match="optional extra"):
            load_model("vllm:/no/such/folder")
    else:  # pragma: no cover - only where vLLM is installed (a GPU machine)
        with pytest.raises(ModelError, match="not found"):
            load_model("vllm:/no/such/folder")


def test_redaction() -> None:
    key = Secret("sk-abcdefghijkl")
    assert str(key) == "***" and "abcdef" not in repr(key)
    assert redact("failed with sk-abcdefghijkl and Bearer sk-other-token", key) == "failed with *** and Bearer ***"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bob:pw-secret@gw.example/v1?key=k-secret&api-version=1",
         "https://***@gw.example/v1?key=***&api-version=***"),
        ("https://tok-secret@gw.example:8443/v1#pw-secret", "https://***@gw.example:8443/v1#***"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ],
)
def test_urls_in_records_and_errors_keep_no_credentials(url: str, shown: str) -> None:
    from purple.evals.runner import model_id
    from purple.models.secrets import public_url

    assert public_url(url) == shown
    assert model_id(f"OPENAI::gpt-4o::$K::{url}") == f"openai:gpt-4o@{shown}"
    assert "secret" not in repr(load_model(f"OPENAI::gpt-4o::sk-x::{url}"))
