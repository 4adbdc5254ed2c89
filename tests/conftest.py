from __future__ import annotations

import pytest

from purple.codeshield import CodeShield


@pytest.fixture(scope="session")
def shield() -> CodeShield:
    """The built-in scanner with real semgrep (installed by the dev extra)."""
    return CodeShield(semgrep=True)
