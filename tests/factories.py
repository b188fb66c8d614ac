"""Row factories shared by the tests: the one way a test builds a ``tasks`` row."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from data_schemas.images import encode_image_cell

__all__ = ["png_bytes", "task_row"]


def png_bytes(color: tuple[int, int, int] = (200, 10, 10), size: tuple[int, int] = (48, 40)) -> bytes:
    """A plain ``size`` RGB image of one ``color``, PNG-encoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def task_row(
    task_id: str = "t1",
    task_type: str = "vqa",
    prompt: str = "?",
    *,
    image: bytes | None = None,
    width: int = 48,
    height: int = 40,
    **fields: Any,
) -> dict[str, Any]:
    """One ``tasks`` row with every column; ``image`` are the encoded bytes (default: a plain 48x40 PNG).

    ``image_sha256`` is the hash of ``image``; ground-truth columns (answer, boxes, answers, choices)
    default to None and are set through ``fields``, which may override any column.
    """
    data = png_bytes() if image is None else image
    row = {
        "task_id": task_id,
        "task_type": task_type,
        "image": encode_image_cell(data, f"{task_id}.png"),
        "image_sha256": hashlib.sha256(data).hexdigest(),
        "width": width,
        "height": height,
        "prompt": prompt,
        "answer": None,
        "boxes": None,
        "answers": None,
        "choices": None,
        "source": f"test:{task_id}",
        "meta": "{}",
    }
    row.update(fields)
    return row
