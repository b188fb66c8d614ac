"""Fixtures of the sample tests: a loaded hf sampler on the session's tiny model (``tiny_model_dir`` from
tests/conftest.py), one torch thread, a small tasks table."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.factories import task_row


@pytest.fixture(scope="session")
def tiny_sampler(tiny_model_dir: Path):
    """An HFSampler on the tiny model, CPU, batch of 4 requests; tests that change batch_size restore it."""
    from stages.vlm.hf_engine import HFSampler

    return HFSampler(tiny_model_dir, device="cpu", batch_size=4)


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
