"""Images named by messages: local files (size-capped) read for local models or sent inline to APIs as data URLs."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

MAX_IMAGE_BYTES = 20_000_000
_DATA_URL = "data:"


def is_remote(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def read_image_bytes(ref: str) -> bytes:
    """The bytes of a local image file or a `data:` URL. Remote URLs are refused: nothing is downloaded."""
    if is_remote(ref):
        raise ValueError(f"image {ref[:80]!r} is a remote URL; local models read local files only (nothing downloads)")
    if ref.startswith(_DATA_URL):
        _, _, payload = ref.partition(",")
        data = base64.b64decode(payload, validate=False)
    else:
        path = Path(ref)
        if not path.is_file():
            raise ValueError(f"image file not found: {ref}")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"image {ref} is larger than {MAX_IMAGE_BYTES:,} bytes")
        data = path.read_bytes()
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"image is larger than {MAX_IMAGE_BYTES:,} bytes")
    return data


def load_pil(ref: str) -> Any:
    """Open an image with Pillow (RGB). Pillow comes with the `local` extra."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(read_image_bytes(ref))) as image:
        return image.convert("RGB")


def image_url(ref: str) -> str:
    """What an OpenAI-style API gets: remote and data URLs as they are, local files inline as data URLs."""
    if is_remote(ref) or ref.startswith(_DATA_URL):
        return ref
    mime = mimetypes.guess_type(ref)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(read_image_bytes(ref)).decode('ascii')}"
