from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.evals.canned import CannedModel, judge_answer, model_answer
from tests.support.openai_server import OpenAIServer


@pytest.fixture(scope="session")
def canned_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(CannedModel("canned", model_answer)) as server:
        yield server


@pytest.fixture(scope="session")
def judge_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(CannedModel("judge", judge_answer)) as server:
        yield server
