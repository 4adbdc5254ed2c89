"""Purple's offline content-safety classifier: P(unsafe) and MLCommons hazard codes (S1-S14), like Llama Guard's.

    from purple.content import default_content_detector, ContentClassifier

    detector = default_content_detector()                    # the shipped model, loaded once per process
    detector.check([Message("user", prompt), Message("assistant", answer)])   # judges the answer: a Verdict
    ContentClassifier(exclude=["S6"])                        # select hazards as for Llama Guard

Importing this package is cheap: onnxruntime loads with the first model.
"""

from purple.content.detector import (
    MODEL_NAMES,
    ContentClassifier,
    ContentScore,
    content_model_folder,
    default_content_detector,
    is_content_model_available,
)

__all__ = [
    "MODEL_NAMES",
    "ContentClassifier",
    "ContentScore",
    "content_model_folder",
    "default_content_detector",
    "is_content_model_available",
]
