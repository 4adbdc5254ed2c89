"""Session fixtures: tiny Llama Guard models built once, loaded once, and a local server in front of one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import OpenAIServer

TEST_KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="session")
def lg3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny import save_llama3_guard

    return save_llama3_guard(tmp_path_factory.mktemp("models") / "tiny-llama-guard-3-1b")


@pytest.fixture(scope="session")
def lg3_model(lg3_dir: Path) -> Any:
    from purple.models.hf import HFModel

    return HFModel(str(lg3_dir), batch_size=4)


@pytest.fixture(scope="session")
def vision_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny import save_mllama_guard

    return save_mllama_guard(tmp_path_factory.mktemp("models") / "tiny-llama-guard-3-11b-vision")


@pytest.fixture(scope="session")
def lg4_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny import save_llama4_guard

    return save_llama4_guard(tmp_path_factory.mktemp("models") / "tiny-llama-guard-4-12b")


@pytest.fixture(scope="session")
def lg3_server(lg3_model: Any) -> Iterator[OpenAIServer]:
    """The tiny Llama Guard 3 behind an OpenAI-compatible endpoint that wants TEST_KEY."""
    with OpenAIServer(lg3_model, api_key=TEST_KEY) as server:
        yield server
