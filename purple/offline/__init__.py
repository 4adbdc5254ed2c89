"""Purple's shipped offline models, each a small frozen MiniLM encoder with a linear head in one folder: injection
(MODEL_DIR) and content safety (CONTENT_MODEL_DIR)."""

from purple.offline.encoder import (
    CONTENT_MODEL_DIR,
    MODEL_DIR,
    OfflineModelError,
    SharedEncoder,
    is_model_available,
    shared_encoder,
)

__all__ = ["CONTENT_MODEL_DIR", "MODEL_DIR", "OfflineModelError", "SharedEncoder", "is_model_available", "shared_encoder"]
