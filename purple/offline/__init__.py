"""Purple's shipped offline models: one frozen MiniLM encoder with heads for injection and content safety."""

from purple.offline.encoder import CONTENT_MODEL_DIR, MODEL_DIR, OfflineModelError, SharedEncoder, is_model_available, shared_encoder

__all__ = ["CONTENT_MODEL_DIR", "MODEL_DIR", "OfflineModelError", "SharedEncoder", "is_model_available", "shared_encoder"]
