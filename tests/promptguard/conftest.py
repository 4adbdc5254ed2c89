from __future__ import annotations

from pathlib import Path

import pytest

from tests.promptguard.tiny import build_prompt_guard


@pytest.fixture(scope="session")
def pg1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Prompt Guard 1-shaped model folder (3 classes: benign, injection, jailbreak)."""
    return build_prompt_guard(tmp_path_factory.mktemp("pg1"), version=1, seed=1)


@pytest.fixture(scope="session")
def pg2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Prompt Guard 2-shaped model folder (2 classes: benign, malicious)."""
    return build_prompt_guard(tmp_path_factory.mktemp("pg2"), version=2, seed=2)


@pytest.fixture(scope="session")
def pg1(pg1_dir: Path):
    from purple.promptguard import PromptGuard

    return PromptGuard.from_pretrained(pg1_dir)


@pytest.fixture(scope="session")
def pg2(pg2_dir: Path):
    from purple.promptguard import PromptGuard

    return PromptGuard.from_pretrained(pg2_dir)
