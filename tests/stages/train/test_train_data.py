"""Listwise rows joined with their task images: what is kept, what is quarantined and why."""

from __future__ import annotations

import json

import pyarrow as pa

from data_schemas.quarantine import QuarantineReason

from data_schemas.tables import validate_table
from stages.train.data import image_cells, load_lists

from train_tables import COLOURS, RESPONSES, make_listwise, make_tasks, png


def _listwise_rows(**changes) -> list[dict]:
    """make_listwise()'s rows, with ``changes[task_id]`` merged into that row."""
    rows = make_listwise([[-1.0, -2.0, -3.0, -4.0]] * 3).to_pylist()
    return [{**row, **changes.get(row["task_id"], {})} for row in rows]


def test_every_good_row_becomes_an_example_in_order():
    examples, quarantine = load_lists(make_tasks(), make_listwise([[-1.0, -2.0, -3.0, -4.0]] * 3))
    assert quarantine == [] and [ex.task_id for ex in examples] == list(COLOURS)
    ex = examples[0]
    assert ex.prompt == "What colour is the shape?"
    assert ex.responses == [r[0] for r in RESPONSES] and ex.rewards == [r[1] for r in RESPONSES]
    assert ex.origins == [r[2] for r in RESPONSES] and ex.ref_logps == [-1.0, -2.0, -3.0, -4.0]
    assert ex.image().size == (64, 64) and ex.image().getpixel((5, 5)) == COLOURS["t-red"]


def test_missing_values_have_their_documented_meaning():
    rows = _listwise_rows(**{
        "t-red": {"rewards": [1.0, float("nan"), None, 0.0]},      # NaN and null: no reward
        "t-green": {"origins": None, "rewards": None},              # no origins: policy samples; no rewards
        "t-blue": {"ref_logps": [-1.0, None, -3.0, -4.0]},          # partly filled: not computed
    })
    examples, quarantine = load_lists(make_tasks(), validate_table(rows, "listwise"))
    assert quarantine == []
    red, green, blue = examples
    assert red.rewards == [1.0, None, None, 0.0]
    assert green.origins == ["policy"] * 4 and green.rewards == [None] * 4
    assert blue.ref_logps is None and blue.ref_n_tokens is None and red.ref_logps is not None


def test_bad_rows_are_quarantined_with_their_reason_never_dropped():
    tasks = make_tasks()
    broken = {"bytes": png((1, 2, 3))[:40], "path": "t-blue.png"}  # a truncated PNG
    image_col = [broken if tid == "t-blue" else cell for tid, cell in zip(tasks["task_id"].to_pylist(), tasks["image"].to_pylist())]
    tasks = tasks.set_column(tasks.schema.get_field_index("image"), "image", pa.array(image_col, tasks.schema.field("image").type))
    rows = _listwise_rows(**{"t-green": {"rewards": [1.0, 0.0]}})  # 4 responses, 2 rewards
    rows.append({**rows[0], "task_id": "t-unknown"})
    examples, quarantine = load_lists(tasks, validate_table(rows, "listwise"))
    assert [ex.task_id for ex in examples] == ["t-red"]
    reasons = {q["row_ref"]: q["reason"] for q in quarantine}
    assert reasons == {"t-green": QuarantineReason.RAGGED_LIST, "t-blue": QuarantineReason.CORRUPT_IMAGE, "t-unknown": QuarantineReason.UNKNOWN_TASK}
    ragged = next(q for q in quarantine if q["row_ref"] == "t-green")
    assert "4 responses" in ragged["message"] and json.loads(ragged["record"])["task_id"] == "t-green"


def test_a_text_only_task_has_no_image():
    tasks = make_tasks()
    tasks = tasks.set_column(tasks.schema.get_field_index("image"), "image", pa.nulls(3, tasks.schema.field("image").type))
    examples, quarantine = load_lists(tasks, make_listwise())
    assert quarantine == [] and all(ex.image_cell is None and ex.image() is None for ex in examples)


def test_image_cells_map_task_ids_without_decoding():
    tasks = make_tasks()
    cells = image_cells(tasks)
    assert list(cells) == list(COLOURS) and cells["t-red"]["bytes"] == png(COLOURS["t-red"])
