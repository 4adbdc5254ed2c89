from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.firewall.support import StreamingServer
from tests.support.fixtures import TEST_KEY


@pytest.fixture(scope="session")
def upstream(lg3_model: Any) -> Iterator[StreamingServer]:
    """The tiny model behind a real OpenAI-compatible HTTP server (streaming too) that wants TEST_KEY."""
    with StreamingServer(lg3_model, api_key=TEST_KEY) as server:
        yield server
