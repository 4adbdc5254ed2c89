"""A content-addressed response cache: the answer to (model, conversation, parameters) stored under its hash.

Entries are small JSON files written atomically, so a killed run never leaves a torn entry. Only successful
answers are cached. The key holds the model's public identity (provider, name, base URL), never an API key.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from purple.models.base import GenerationParams
from purple.types import Conversation


def cache_key(model_id: str, conversation: Conversation, params: GenerationParams) -> str:
    payload = {
        "model": model_id,
        "messages": [{"role": m.role, "content": m.content, "images": list(m.images)} for m in conversation],
        "params": asdict(params),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class ResponseCache:
    """Responses on disk under `root/<first two hex digits>/<sha256>.json`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            value = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None  # unreadable (or nested too deeply): asked again and rewritten
        text = value.get("text") if isinstance(value, dict) else None
        return text if isinstance(text, str) else None

    def put(self, key: str, text: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"text": text}, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
