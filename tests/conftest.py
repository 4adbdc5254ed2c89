from __future__ import annotations

import pytest

from purple.codeshield import CodeShield


@pytest.fixture(scope="session")
def shield() -> CodeShield:
    """The built-in scanner with real semgrep (installed by the dev extra)."""
    return CodeShield(semgrep=True)


# Tiny Llama Guard models and a local OpenAI-compatible server (tests/support), shared by the whole session.
from tests.support.fixtures import lg3_dir, lg3_model, lg3_server, lg4_dir, vision_dir  # noqa: E402,F401
