"""Model backends behind one ChatModel protocol, chosen by a spec string: see `load_model`."""

from purple.models.base import ChatModel, FirstTokenScorer, GenerationParams, ModelError, PromptModel, TokenProbs
from purple.models.loader import load_model
from purple.models.spec import ModelSpec, parse_spec

__all__ = [
    "ChatModel",
    "FirstTokenScorer",
    "GenerationParams",
    "ModelError",
    "ModelSpec",
    "PromptModel",
    "TokenProbs",
    "load_model",
    "parse_spec",
]
