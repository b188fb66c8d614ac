"""Tasks + listwise tables for the train tests (tiny: three lists of four responses unless told otherwise)."""

from __future__ import annotations

import hashlib
import io

import pyarrow as pa

from data_schemas.images import encode_image_cell
from data_schemas.tables import validate_table

COLOURS = {"t-red": (220, 30, 30), "t-green": (30, 200, 60), "t-blue": (40, 60, 220)}
COLOURS4 = {**COLOURS, "t-white": (235, 235, 235)}
RESPONSES = [
    ("red", 1.0, "policy"),
    ("a red circle", 0.75, "ground_truth"),
    ("blue", 0.25, "hallucination"),
    ("green square", 0.0, "distorted_image"),
]


def png(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, format="PNG")
    return buf.getvalue()


def make_tasks(colours: dict[str, tuple[int, int, int]] = COLOURS) -> pa.Table:
    rows = []
    for tid, colour in colours.items():
        data = png(colour)
        rows.append(
            {
                "task_id": tid, "task_type": "vqa", "image": encode_image_cell(data, f"{tid}.png"),
                "image_sha256": hashlib.sha256(data).hexdigest(), "width": 64, "height": 64,
                "prompt": "What colour is the shape?", "answer": tid[2:], "boxes": None, "answers": [tid[2:]],
                "choices": None, "source": "test", "meta": "{}",
            }
        )
    return validate_table(rows, "tasks")


def make_listwise(
    ref: list[list[float]] | None = None,
    colours: dict[str, tuple[int, int, int]] = COLOURS,
    responses: dict[str, list[tuple[str, float, str]]] | None = None,
) -> pa.Table:
    """One list per task of ``colours``: RESPONSES, or ``responses[task_id]`` where given."""
    rows = []
    for k, tid in enumerate(colours):
        triples = (responses or {}).get(tid, RESPONSES)
        rows.append(
            {
                "task_id": tid, "task_type": "vqa", "prompt": "What colour is the shape?",
                "responses": [r[0] for r in triples], "rewards": [r[1] for r in triples],
                "origins": [r[2] for r in triples], "cand_ids": [f"{tid}-{i}" for i in range(len(triples))],
                "logprob_sums": None, "n_tokens": None,
                "ref_logps": None if ref is None else ref[k], "ref_n_tokens": None,
            }
        )
    return validate_table(rows, "listwise")
