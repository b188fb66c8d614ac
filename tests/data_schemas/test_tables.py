"""Table schemas: validation every writer calls, and images that `datasets` decodes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_schemas import SCHEMA_VERSION, TABLES, schema_for, validate_table
from data_schemas.features import hf_features
from stages.lib.errors import SchemaError
from tests.factories import png_bytes, task_row

_OPTIONAL = ("boxes", "answers", "choices", "source", "meta")


def _task(**over) -> dict:
    """A tasks row without its optional columns (validation must fill them)."""
    row = task_row("t1", "ocr", "Read it.", image=png_bytes(size=(8, 6)), width=8, height=6, answer="HI")
    return {k: v for k, v in row.items() if k not in _OPTIONAL} | over


def test_every_table_has_a_schema_and_a_version():
    assert set(TABLES) == {
        "tasks", "eval_tasks", "candidates", "scored", "listwise", "pairs", "groups", "quarantine", "model", "eval"
    }
    assert SCHEMA_VERSION
    with pytest.raises(SchemaError, match="unknown table 'nope'; available: tasks"):
        schema_for("nope")


def test_validate_fills_optional_columns_and_orders_them():
    table = validate_table([_task()], "tasks")
    assert table.schema.names == TABLES["tasks"].names
    assert table.column("boxes").to_pylist() == [None]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_task(task_id=None), "column 'task_id' has 1 null"),
        (_task(image=None), "column 'image' has 1 null"),
        (_task(width="wide"), "rows do not fit the schema"),
        ({**_task(), "surprise": 1}, r"unexpected columns \['surprise'\]"),
    ],
)
def test_validate_rejects_bad_rows(row, message):
    with pytest.raises(SchemaError, match=message):
        validate_table([row], "tasks")


def test_validate_rejects_missing_required_column_of_a_table():
    table = pa.table({"task_id": ["a"], "prompt": ["p"], "chosen": ["c"]})
    with pytest.raises(SchemaError, match=r"missing: \['rejected'\]"):
        validate_table(table, "pairs")


def test_cast_of_compatible_types():
    table = pa.table({"task_id": ["a"], "prompt": ["p"], "chosen": ["c"], "rejected": ["r"], "margin": pa.array([1], pa.int64())})
    assert validate_table(table, "pairs").schema.field("margin").type == pa.float64()


def test_hf_features_type_images():
    features = hf_features(TABLES["tasks"])
    assert features["image"] == {"_type": "Image"}
    assert features["boxes"] == {"_type": "List", "feature": {"_type": "List", "feature": {"_type": "Value", "dtype": "float64"}}}


def test_datasets_decodes_the_tasks_image_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "tasks.parquet"
    pq.write_table(validate_table([_task(), _task(task_id="t2")], "tasks"), path)
    ds = datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds.features["image"], datasets.Image)
    image = ds[0]["image"]
    assert isinstance(image, Image.Image) and image.size == (8, 6)


def test_origins_are_the_origin_enum():
    from data_schemas.tables import ORIGINS, Origin

    assert ORIGINS == ("policy", "distorted_image", "hallucination", "ground_truth", "prior_answer")
    assert ORIGINS == tuple(Origin)
