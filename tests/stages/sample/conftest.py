"""Fixtures of the sample tests: a small tasks table (the loaded ``tiny_sampler`` is in tests/conftest.py)."""

from __future__ import annotations

import io

import pytest

from tests.factories import task_row


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(img).rectangle([4, 6, size[0] // 2, size[1] // 2], fill=color)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def tasks_table():
    """Three valid tasks (grounding with boxes only, VQA with answers, OCR with answer text)."""
    from data_schemas.tables import validate_table

    rows = [
        task_row("t-ground", "grounding", "Locate the red box as [x1, y1, x2, y2].", image=png_bytes((255, 0, 0)),
                 boxes=[[4.0, 6.0, 24.0, 20.0]]),
        task_row("t-vqa", "vqa", "What colour is the box?", image=png_bytes((0, 0, 255)), answers=["blue", "blue", "navy"]),
        task_row("t-ocr", "ocr", "Read the text.", image=png_bytes((0, 128, 0)), answer="HELLO 42"),
    ]
    return validate_table(rows, "tasks")
