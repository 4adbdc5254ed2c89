"""Purple: a safety and evaluation suite for LLM applications."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("purple")
except PackageNotFoundError:  # running from a checkout without installation
    __version__ = "0.0.0+checkout"
