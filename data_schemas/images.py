"""The Hugging Face ``Image`` feature as Arrow sees it: a struct ``{bytes: binary, path: string}``."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa

__all__ = ["IMAGE_STRUCT", "encode_image_cell", "decode_image_cell"]

IMAGE_STRUCT = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


def encode_image_cell(data: bytes, path: str | None = None) -> dict[str, Any]:
    """Return the cell value for an image column: the encoded file bytes and an optional name."""
    return {"bytes": data, "path": path}


def decode_image_cell(cell: dict[str, Any]):
    """Open an image cell as an RGB ``PIL.Image`` (fully loaded, EXIF orientation already baked in at ingest)."""
    from PIL import Image

    raw = cell.get("bytes") if isinstance(cell, dict) else None
    if not raw:
        raise ValueError("image cell has no bytes")
    img = Image.open(io.BytesIO(raw))
    img.load()
    return img.convert("RGB")
