"""The synthetic demo corpus (stages/ingest/demo_corpus.py and the demo adapter)."""

from __future__ import annotations

import io
import time
from collections import Counter

import pyarrow as pa
import pytest
from PIL import Image

from data_schemas.images import decode_image_cell
from stages.ingest import IngestConfig, write_demo_corpus
from stages.ingest.demo_corpus import COLOURS, demo_item, render_demo_item


def test_same_seed_gives_an_identical_tasks_table(run_ingest):
    a = run_ingest(IngestConfig(n_tasks=24, seed=3)).tasks
    b = run_ingest(IngestConfig(n_tasks=24, seed=3)).tasks
    assert a.equals(b) and a.num_rows == 24


def test_another_seed_gives_other_tasks(run_ingest):
    a = run_ingest(IngestConfig(n_tasks=12, seed=0)).tasks.column("task_id").to_pylist()
    b = run_ingest(IngestConfig(n_tasks=12, seed=1)).tasks.column("task_id").to_pylist()
    assert not set(a) & set(b)


def test_the_default_demo_corpus_is_fast_and_mixes_three_task_types(run_ingest):
    pa.array(["warm-up"])  # pyarrow imports pandas on its first Python conversion (~1 s, once per process)
    start = time.perf_counter()
    run = run_ingest(IngestConfig())  # n_tasks = 48
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"demo corpus took {elapsed:.2f}s"
    assert run.quarantine == [] and run.tasks.num_rows == 48
    assert Counter(run.tasks.column("task_type").to_pylist()) == {"grounding": 16, "ocr": 16, "vqa": 16}
    assert len(set(run.tasks.column("task_id").to_pylist())) == 48
    rows = run.tasks.to_pylist()
    assert any(len(r["boxes"]) > 1 for r in rows if r["task_type"] == "grounding")  # "all red circles"
    assert any(r["choices"] for r in rows if r["task_type"] == "vqa")  # multiple choice
    assert any(r["prompt"].startswith("How many") for r in rows)


@pytest.mark.parametrize("index", range(0, 30, 3))
def test_grounding_boxes_are_tight_around_the_named_shapes(index):
    item = demo_item(seed=5, index=index)
    img = Image.open(io.BytesIO(render_demo_item(item))).convert("RGB")
    colour = next(c for c in COLOURS if f" {c} " in item.task.prompt)
    assert len(item.task.boxes) == sum(1 for s in item.shapes if s.colour == colour and s.kind in item.task.prompt)
    for x1, y1, x2, y2 in item.task.boxes:
        crop = img.crop((int(x1), int(y1), int(x2), int(y2)))
        # the named colour touches all four edges of the box: the box is tight around the shape
        px = crop.load()
        w, h = crop.size
        assert any(px[x, 0] == COLOURS[colour] for x in range(w)) and any(px[x, h - 1] == COLOURS[colour] for x in range(w))
        assert any(px[0, y] == COLOURS[colour] for y in range(h)) and any(px[w - 1, y] == COLOURS[colour] for y in range(h))
        # and nothing of it lies just outside (shapes are placed 2 px apart)
        ring = [(x, y) for x in range(int(x1) - 1, int(x2) + 1) for y in (int(y1) - 1, int(y2))]
        ring += [(x, y) for y in range(int(y1) - 1, int(y2) + 1) for x in (int(x1) - 1, int(x2))]
        assert all(img.getpixel(p) != COLOURS[colour] for p in ring if 0 <= p[0] < img.width and 0 <= p[1] < img.height)


@pytest.mark.parametrize("index", range(2, 60, 3))
def test_vqa_answers_match_the_drawn_scene(index):
    item = demo_item(seed=7, index=index)
    task, variant = item.task, item.task.meta["demo"]["variant"]
    if variant == "count":
        kind = task.prompt.split()[2][:-1]  # "How many circles are there?"
        assert task.answer == str(sum(s.kind == kind for s in item.shapes))
    elif variant == "colour":
        kind = task.prompt.split()[-1].rstrip("?")
        (shape,) = [s for s in item.shapes if s.kind == kind]
        assert task.answer == shape.colour
    else:
        colour = task.prompt.split("?")[0].split()[-1]
        (shape,) = [s for s in item.shapes if s.colour == colour]
        assert task.choices["ABC".index(task.answer)] == shape.kind


def test_ocr_image_shows_text_and_answer_is_the_text(run_ingest):
    item = demo_item(seed=0, index=1)
    assert item.task.task_type == "ocr" and item.task.answer == item.text
    img = Image.open(io.BytesIO(render_demo_item(item))).convert("L")
    assert img.getextrema()[0] < 80  # dark text drawn on a light background


def test_write_demo_corpus_reads_back_through_jsonl_with_identical_tasks(tmp_path, run_ingest):
    manifest = write_demo_corpus(tmp_path / "corpus", n_tasks=18, seed=4)
    assert manifest == tmp_path / "corpus" / "manifest.jsonl"
    assert not list((tmp_path / "corpus").rglob(".*tmp*"))  # no temporary files left behind
    demo = run_ingest(IngestConfig(format="demo", n_tasks=18, seed=4)).tasks
    jsonl = run_ingest(IngestConfig(format="jsonl", path=manifest)).tasks
    assert demo.column("task_id").to_pylist() == jsonl.column("task_id").to_pylist()
    assert demo.drop(["source"]).equals(jsonl.drop(["source"]))
    assert jsonl.column("source").to_pylist()[0] == f"{manifest}:1"


@pytest.mark.parametrize(("n_tasks", "error"), [(0, "at least 1 task")])
def test_write_demo_corpus_rejects_nonsense(tmp_path, n_tasks, error):
    from stages.lib.errors import ConfigError, CorpusError

    with pytest.raises(ConfigError, match=error):
        write_demo_corpus(tmp_path / "c", n_tasks=n_tasks)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CorpusError, match="exists and is not a folder"):
        write_demo_corpus(tmp_path / "file", n_tasks=3)


def test_demo_images_decode_as_rgb(run_ingest):
    row = run_ingest(IngestConfig(n_tasks=3)).tasks.to_pylist()[0]
    img = decode_image_cell(row["image"])
    assert img.mode == "RGB" and img.size == (row["width"], row["height"])
    assert row["image"]["path"].startswith("images/demo-")
