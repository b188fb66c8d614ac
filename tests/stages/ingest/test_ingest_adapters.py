"""The corpus adapters: demo, coco (detection and referring), jsonl, parquet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_schemas.images import IMAGE_STRUCT
from data_schemas.tables import validate_table
from stages.lib.errors import ConfigError, CorpusError
from stages.ingest import ADAPTERS, CorpusFormat, IngestConfig, get_adapter, plan_shards


def _png(size=(60, 40), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(size=(60, 40), color=(30, 30, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


# --- fixtures on disk ---------------------------------------------------------------------------


def _coco(tmp_path: Path, with_refs: bool = False) -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "images" / "a.jpg").write_bytes(_jpeg((60, 40)))
    (tmp_path / "images" / "b.png").write_bytes(_png((50, 50)))
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 60, "height": 40},
            {"id": 2, "file_name": "b.png", "width": 50, "height": 50},
            {"id": 3, "file_name": "gone.jpg", "width": 10, "height": 10},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 8], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 10, 5, 5], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [30, 5, 10, 10], "iscrowd": 0},
            {"id": 4, "image_id": 1, "category_id": 2, "bbox": [0, 0, 60, 40], "iscrowd": 1},
            {"id": 5, "image_id": 2, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 0},
            {"id": 6, "image_id": 2, "category_id": 2, "bbox": [10, 10, -5, 3], "iscrowd": 0},
            {"id": 7, "image_id": 9, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": 0},
            {"id": 8, "image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": 0},
            {"id": 9, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2], "iscrowd": 0},
        ],
    }
    if with_refs:
        data["refs"] = _refs()
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _refs() -> list[dict]:
    return [
        {"ref_id": 10, "image_id": 1, "ann_id": 1, "split": "val",
         "sentences": [{"sent": "the left cat", "sent_id": 100}, {"sent": "small cat", "sent_id": 101}]},
        {"ref_id": 11, "image_id": 2, "ann_id": 5, "split": "train", "sentences": [{"sent": "big cat", "sent_id": 102}]},
        {"ref_id": 12, "image_id": 1, "ann_id": 2, "split": "val", "sentences": [{"sent": "The  left cat", "sent_id": 103}]},
        {"ref_id": 13, "image_id": 1, "ann_id": 777, "split": "val", "sentences": [{"sent": "ghost", "sent_id": 104}]},
    ]


def _parquet(path: Path, rows: list[dict], image_type: pa.DataType = IMAGE_STRUCT, row_group_size: int = 2) -> Path:
    schema = pa.schema(
        [
            ("img", image_type),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("answers", pa.list_(pa.string())),
            ("choices", pa.list_(pa.string())),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=row_group_size)
    return path


def _vqa_rows(n: int, offset: int = 0) -> list[dict]:
    return [
        {"img": {"bytes": _png(color=(i * 20 % 255, 10, 10)), "path": f"img{i}.png"}, "question": f"What is {i}?",
         "answer": str(i), "answers": [str(i), str(i)], "choices": None}
        for i in range(offset, offset + n)
    ]


def _parquet_config(tmp_path: Path, **extra) -> IngestConfig:
    return IngestConfig(
        format="parquet", path=tmp_path / "pq", image_column="img", prompt_column="question", default_task_type="vqa", **extra
    )


def _build_demo(tmp_path: Path) -> IngestConfig:
    return IngestConfig(format="demo", n_tasks=6)


def _build_coco(tmp_path: Path) -> IngestConfig:
    return IngestConfig(format="coco", path=_coco(tmp_path), image_root=tmp_path / "images")


def _build_jsonl(tmp_path: Path) -> IngestConfig:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "x.png").write_bytes(_png())
    lines = [
        {"image": "pics/x.png", "task_type": "grounding", "prompt": "Where is it?", "boxes": [[1, 1, 20, 20]]},
        {"image": "pics/x.png", "task_type": "ocr", "prompt": "Read.", "answer": "HELLO", "meta": {"k": 1}},
        {"image": str(tmp_path / "pics" / "x.png"), "task_type": "vqa", "prompt": "Which?", "answer": "b", "choices": ["a", "b"]},
        {"image": "pics/x.png", "task_type": "caption", "prompt": "Describe.", "answers": ["red", "a red box"]},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(l) for l in lines) + "\n\n")
    return IngestConfig(format="jsonl", path=manifest)


def _build_parquet(tmp_path: Path) -> IngestConfig:
    _parquet(tmp_path / "pq" / "train-0.parquet", _vqa_rows(5))
    return _parquet_config(tmp_path, shard_size=3)


BUILDERS = {
    CorpusFormat.DEMO: _build_demo,
    CorpusFormat.COCO: _build_coco,
    CorpusFormat.JSONL: _build_jsonl,
    CorpusFormat.PARQUET: _build_parquet,
}


def test_every_adapter_has_a_fixture():
    assert set(BUILDERS) == set(ADAPTERS) == set(CorpusFormat)


@pytest.mark.parametrize("fmt", list(CorpusFormat))
def test_every_adapter_makes_valid_tasks_from_light_records(fmt, tmp_path, run_ingest):
    config = BUILDERS[fmt](tmp_path)
    plan = plan_shards(config)
    for shard in plan.shards:
        assert shard.column_names == ["record", "source"]
        assert max(len(r) for r in shard.column("record").to_pylist()) < 2000  # references, never image bytes
    run = run_ingest(config)
    assert run.tasks.num_rows > 0
    assert validate_table(run.tasks, "tasks").equals(run.tasks)
    assert all(r["image"]["bytes"] for r in run.tasks.to_pylist())


def test_unknown_format_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"unknown \[ingest\] format 'tfrecord'; available: demo, coco, jsonl, parquet"):
        get_adapter("tfrecord")


@pytest.mark.parametrize("fmt", ["coco", "jsonl", "parquet"])
def test_missing_corpus_path_is_a_corpus_error_before_any_shard(fmt, tmp_path):
    with pytest.raises(CorpusError, match=r"path = '.*nowhere' does not exist"):
        plan_shards(IngestConfig(format=fmt, path=tmp_path / "nowhere"))


# --- COCO -----------------------------------------------------------------------------------------


def test_coco_detection_makes_one_task_per_image_and_category(tmp_path, run_ingest):
    run = run_ingest(_build_coco(tmp_path))
    tasks = {(json.loads(r["meta"])["coco"]["image_id"], json.loads(r["meta"])["coco"]["category_id"]): r for r in run.tasks.to_pylist()}
    assert set(tasks) == {(1, 1), (1, 2), (2, 1)}
    cats = tasks[(1, 1)]
    assert cats["prompt"] == "Give the bounding box of every cat."
    assert cats["boxes"] == [[1.0, 2.0, 11.0, 10.0], [20.0, 10.0, 25.0, 15.0]]
    assert cats["answer"] == "[1, 2, 11, 10], [20, 10, 25, 15]"
    assert (cats["width"], cats["height"], cats["image"]["path"]) == (60, 40, "a.jpg")
    assert json.loads(tasks[(1, 2)]["meta"])["coco"]["n_crowd"] == 1 and tasks[(1, 2)]["boxes"] == [[30.0, 5.0, 40.0, 15.0]]
    where = str(tmp_path / "instances.json")
    assert run.reasons() == {
        f"{where}:image=2,category=2": "bad_box",
        f"{where}:image=9,category=1": "malformed_record",
        f"{where}:image=3,category=1": "missing_image",
        f"{where}:image=1,category=99": "malformed_record",
    }


def test_coco_referring_expressions_one_task_per_sentence(tmp_path, run_ingest):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"refs": _refs()}))
    config = IngestConfig(format="coco", path=_coco(tmp_path), image_root=tmp_path / "images", refs_path=refs, ref_split="val")
    run = run_ingest(config)
    rows = run.tasks.to_pylist()
    assert [r["prompt"] for r in rows] == [
        "Give the bounding box of the region this sentence describes: the left cat",
        "Give the bounding box of the region this sentence describes: small cat",
    ]
    assert all(r["boxes"] == [[1.0, 2.0, 11.0, 10.0]] for r in rows)
    assert json.loads(rows[0]["meta"])["refcoco"] == {
        "ref_id": 10, "image_id": 1, "ann_id": 1, "split": "val", "sent_id": 100, "expression": "the left cat"
    }
    assert run.reasons() == {f"{refs}:ref=12,sent=103": "duplicate", f"{refs}:ref=13,sent=104": "malformed_record"}


def test_coco_refs_inside_the_annotation_file_and_all_splits(tmp_path, run_ingest):
    run = run_ingest(IngestConfig(format="coco", path=_coco(tmp_path, with_refs=True), image_root=tmp_path / "images"))
    assert run.tasks.num_rows == 3  # sentences 100, 101, 102 (103 duplicate, 104 dangling)


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "must hold a JSON object"), ('{"images": 3}', "no valid 'images' list")],
)
def test_unreadable_coco_file_is_a_corpus_error(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CorpusError, match=match):
        plan_shards(IngestConfig(format="coco", path=path))


def test_coco_declared_raw_size_rotates_boxes_of_an_exif_rotated_photo(tmp_path, run_ingest, image_bytes):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "p.jpg").write_bytes(image_bytes(fmt="JPEG", size=(40, 30), orientation=6))
    data = {
        "images": [{"id": 1, "file_name": "p.jpg", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "cup"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 3, 10, 6]}],
    }
    (tmp_path / "c.json").write_text(json.dumps(data))
    row = run_ingest(IngestConfig(format="coco", path=tmp_path / "c.json", image_root=tmp_path / "images")).tasks.to_pylist()[0]
    assert (row["width"], row["height"]) == (30, 40)
    assert row["boxes"] == [[21.0, 5.0, 27.0, 15.0]]


# --- JSONL ----------------------------------------------------------------------------------------


def test_jsonl_reads_every_task_type_and_field(tmp_path, run_ingest):
    run = run_ingest(_build_jsonl(tmp_path))
    assert run.quarantine == []
    rows = {r["task_type"]: r for r in run.tasks.to_pylist()}
    assert rows["grounding"]["boxes"] == [[1.0, 1.0, 20.0, 20.0]] and rows["grounding"]["answer"] == "[1, 1, 20, 20]"
    assert rows["ocr"]["answer"] == "HELLO" and json.loads(rows["ocr"]["meta"]) == {"k": 1}
    assert rows["vqa"]["answer"] == "B" and rows["vqa"]["choices"] == ["a", "b"]
    assert rows["vqa"]["image"]["path"] == "x.png"  # absolute paths keep only the file name
    assert rows["caption"]["answer"] == "red" and rows["caption"]["answers"] == ["red", "a red box"]
    assert rows["ocr"]["image"]["path"] == "pics/x.png" and rows["ocr"]["source"] == f"{tmp_path / 'manifest.jsonl'}:2"


def test_jsonl_column_mapping_image_root_and_xywh(tmp_path, run_ingest):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "q.png").write_bytes(_png())
    manifest = tmp_path / "sub" / "m.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"file": "q.png", "kind": "grounding", "text": "Box it.", "bbox": [2, 3, 4, 5]}) + "\n")
    config = IngestConfig(
        format="jsonl", path=manifest, image_root=tmp_path / "imgs", image_column="file", task_type_column="kind",
        prompt_column="text", boxes_column="bbox", box_layout="xywh",
    )
    (row,) = run_ingest(config).tasks.to_pylist()
    assert row["prompt"] == "Box it." and row["boxes"] == [[2.0, 3.0, 6.0, 8.0]]


def test_jsonl_path_must_be_a_file(tmp_path):
    with pytest.raises(CorpusError, match="is a folder; format = 'jsonl' needs the manifest file"):
        plan_shards(IngestConfig(format="jsonl", path=tmp_path))


# --- Parquet --------------------------------------------------------------------------------------


def test_parquet_embedded_images_across_row_groups_and_shards(tmp_path, run_ingest):
    run = run_ingest(_build_parquet(tmp_path))  # 5 rows, row groups of 2, shards of 3
    assert run.n_shards == 2 and run.quarantine == []
    rows = run.tasks.to_pylist()
    assert [r["prompt"] for r in rows] == [f"What is {i}?" for i in range(5)]
    expected = _vqa_rows(5)
    assert [r["image"]["bytes"] for r in rows] == [e["img"]["bytes"] for e in expected]  # PNG kept byte for byte
    assert rows[3]["answers"] == ["3", "3"] and rows[3]["image"]["path"] == "img3.png"
    assert rows[4]["source"] == f"{tmp_path / 'pq' / 'train-0.parquet'}:row=4"


def test_parquet_folder_binary_column_choices_and_path_only_cells(tmp_path, run_ingest):
    _parquet(tmp_path / "pq" / "a.parquet", _vqa_rows(2))
    rows = [{"img": _jpeg(), "question": "Pick one.", "answer": "yes", "answers": None, "choices": ["no", "yes"]}]
    _parquet(tmp_path / "pq" / "sub" / "b.parquet", rows, image_type=pa.binary())
    (tmp_path / "pq" / "c").mkdir()
    (tmp_path / "pq" / "c" / "side.png").write_bytes(_png(color=(1, 2, 3)))
    _parquet(tmp_path / "pq" / "c" / "c.parquet", [{"img": {"bytes": None, "path": "side.png"}, "question": "Q?", "answer": "A"}])
    run = run_ingest(_parquet_config(tmp_path))
    assert run.quarantine == []
    by_prompt = {r["prompt"]: r for r in run.tasks.to_pylist()}
    assert set(by_prompt) == {"What is 0?", "What is 1?", "Pick one.", "Q?"}
    assert by_prompt["Pick one."]["answer"] == "B" and by_prompt["Pick one."]["image"]["path"] is None
    assert by_prompt["Q?"]["image"]["bytes"] == (tmp_path / "pq" / "c" / "side.png").read_bytes()


def test_parquet_same_embedded_image_and_prompt_in_two_files_is_a_duplicate(tmp_path, run_ingest):
    _parquet(tmp_path / "pq" / "a.parquet", _vqa_rows(2))
    _parquet(tmp_path / "pq" / "b.parquet", _vqa_rows(1))
    run = run_ingest(_parquet_config(tmp_path, shard_size=1))
    assert run.tasks.num_rows == 2
    (dup,) = run.quarantine
    assert dup["reason"] == "duplicate" and dup["row_ref"].endswith("b.parquet:row=0") and "a.parquet:row=0" in dup["message"]


@pytest.mark.parametrize(
    ("config_change", "match"),
    [
        ({"image_column": "picture"}, r"has no column 'picture' \(\[ingest\] image_column\); columns present: img, question"),
        ({"prompt_column": "prompt"}, r"has no column 'prompt' \(\[ingest\] prompt_column\)"),
        ({"image_column": "answers"}, r"column 'answers' .* expected an image struct"),
    ],
)
def test_parquet_column_problems_name_the_setting(tmp_path, config_change, match):
    _parquet(tmp_path / "pq" / "a.parquet", _vqa_rows(1))
    config = _parquet_config(tmp_path).model_copy(update=config_change)
    with pytest.raises(CorpusError, match=match):
        plan_shards(config)


def test_parquet_folder_without_files_and_non_parquet_file(tmp_path):
    (tmp_path / "pq").mkdir()
    with pytest.raises(CorpusError, match="holds no .parquet files"):
        plan_shards(_parquet_config(tmp_path))
    (tmp_path / "pq" / "x.parquet").write_text("not parquet")
    with pytest.raises(CorpusError, match="is not a readable Parquet file"):
        plan_shards(_parquet_config(tmp_path))
