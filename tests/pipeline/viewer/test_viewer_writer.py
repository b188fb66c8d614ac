"""The viewer's files: what the data files hold (against the run's tables), paging, image reuse, bad folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from data_schemas.tables import ORIGINS
from pipeline.config import load_config
from pipeline.store import RunStore
from pipeline.viewer import COLOUR_MEANINGS, ORIGIN_COLOURS, write_viewer
from pipeline.viewer.images import ImageEncoder
from pipeline.viewer.records import quarantine_task_id, text_diff
from pipeline.viewer.writer import TASKS_PER_CHUNK, looks_like_viewer
from stages.lib.boxes import box_iou
from stages.lib.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
_DEFINE = re.compile(r'^PERPO\.define\("([^"]+)",(.*)\);\n$', re.S)


def data(viewer: Path, name: str):
    """Read a data file back the way the page does: the argument of PERPO.define(name, …)."""
    match = _DEFINE.match((viewer / "data" / f"{name}.js").read_text(encoding="utf-8"))
    assert match and match.group(1) == name
    return json.loads(match.group(2))


def test_summary_and_facets_match_the_runs_tables(viewer_run):
    viewer = viewer_run / "viewer"
    assert looks_like_viewer(viewer)
    store = RunStore(viewer_run)
    tasks = store.read_table("ingest", "tasks", "tasks", columns=["task_id", "task_type"])
    listwise = store.read_table("reference", "listwise", "listwise")
    summary = data(viewer, "summary")
    assert summary["n_tasks"] == tasks.num_rows == 9
    assert summary["counts"]["lists"] == listwise.num_rows
    assert summary["quarantine"]["n"] == store.read_quarantine().num_rows >= 2
    assert summary["colours"] == ORIGIN_COLOURS
    facets = data(viewer, "facets")
    assert facets["ids"] == tasks["task_id"].to_pylist()
    types = [summary["task_types"][ord(c) - 32] for c in facets["type"]]
    assert types == tasks["task_type"].to_pylist()
    assert all(len(facets["best"][o]) == 9 for o in ORIGINS)


def test_task_records_hold_the_list_in_rank_order_with_boxes_and_detail(viewer_run):
    viewer = viewer_run / "viewer"
    listwise = {r["task_id"]: r for r in RunStore(viewer_run).read_table("reference", "listwise", "listwise").to_pylist()}
    records = [rec for k in range(-(-9 // TASKS_PER_CHUNK)) for rec in data(viewer, f"tasks/chunk-{k:05d}")]
    assert len(records) == 9
    for rec in records:
        if rec["id"] in listwise:
            assert rec["status"] == "ranked"
            assert [c["cand_id"] for c in rec["list"]] == listwise[rec["id"]]["cand_ids"]
            assert [c["reward"] for c in rec["list"]] == listwise[rec["id"]]["rewards"]
        assert rec["image"]["src"].startswith("data:image/png;base64,")  # small PNGs are kept as they are
    grounding = next(r for r in records if r["type"] == "grounding" and r["list"])
    gt = next(c for c in grounding["list"] if c["origin"] == "ground_truth")
    # the ground-truth candidate is written on the policy family's grid (the tiny model is a LLaVA: 0-1 of the
    # padded square, 2 decimals), so its boxes are the task's boxes up to that grid
    assert len(gt["boxes"]) == len(grounding["gt_boxes"]) and gt["detail"]["ious"]
    assert all(box_iou(a, b) > 0.8 for a, b in zip(gt["boxes"], grounding["gt_boxes"]))
    hallucination = next(c for r in records for c in r["list"] + r["others"] if c["origin"] == "hallucination")
    assert {op for op, _ in hallucination["diff"]} & {"+", "-"}
    distorted = next(c for r in records for c in r["list"] + r["others"] if c["origin"] == "distorted_image")
    assert distorted["distorted_image"]["src"].startswith("data:image/")
    thumbs = [row[1] for row in data(viewer, "rows/page-00000")]
    assert len(thumbs) == 9 and all(t.startswith("data:image/jpeg;base64,") for t in thumbs)


def test_quarantine_pages_keep_rows_without_a_task(viewer_run):
    viewer = viewer_run / "viewer"
    rows = data(viewer, "quarantine/page-00000")
    ingest = [r for r in rows if r[0] == "ingest"]
    assert len(ingest) == 2 and all(r[6] == -1 for r in ingest)  # no task: shown without an image
    assert "missing_image" in {r[3] for r in ingest} and len({r[3] for r in ingest}) == 2


def test_rewriting_reuses_the_thumbnails_it_already_has(run_copy):
    cfg = load_config(run_copy / "config.toml")
    first = data(run_copy / "viewer", "summary")["images"]
    write_viewer(cfg, run_copy)
    again = data(run_copy / "viewer", "summary")["images"]
    assert first["reused"] == 0 and again["reused"] == 9  # every task image: no decoding
    assert again["encoded"] == first["encoded"] - 9 > 0  # the kept distorted images are encoded again
    assert not list(run_copy.glob(".viewer.tmp-*"))


def test_out_folder_that_is_not_a_viewer_is_refused(run_copy, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not a previous viewer"):
        write_viewer(load_config(run_copy / "config.toml"), run_copy, busy)
    assert (busy / "notes.txt").read_text() == "mine"


def test_an_image_that_does_not_decode_gets_a_reason_not_a_picture(tmp_path):
    encoder = ImageEncoder()
    refs = encoder.add(b"\x89PNG\r\n\x1a\n not really", "k" * 64)
    assert refs.thumb is None and refs.display is None and refs.error.startswith("image does not decode")
    assert encoder.add(None).error == "the task has no image bytes"
    assert encoder.add_file(tmp_path / "gone.png").error.startswith("image file not readable")


def test_large_images_are_shrunk_for_the_page_and_small_ones_kept(tmp_path):
    import base64
    import io

    from PIL import Image

    def encoded(size, fmt):
        out = io.BytesIO()
        Image.new("RGB", size, (200, 30, 30)).save(out, fmt)
        return out.getvalue()

    small = encoded((120, 80), "PNG")
    refs = ImageEncoder().add(small)
    assert base64.b64decode(refs.display.split(",", 1)[1]) == small
    big = ImageEncoder().add(encoded((3000, 1000), "JPEG"))
    with Image.open(io.BytesIO(base64.b64decode(big.display.split(",", 1)[1]))) as img:
        assert img.size == (768, 256)
    with Image.open(io.BytesIO(base64.b64decode(big.thumb.split(",", 1)[1]))) as img:
        assert max(img.size) == 96


def test_text_diff_marks_what_the_hallucination_changed():
    assert text_diff("a red circle", "a blue circle") == [["=", "a "], ["-", "red"], ["+", "blue"], ["=", " circle"]]
    assert text_diff("north", "n0rth") == [["=", "n"], ["-", "o"], ["+", "0"], ["=", "rth"]]


def test_quarantine_rows_are_tied_to_their_task_when_they_name_one():
    ids = {"t1", "t2"}
    assert quarantine_task_id({"row_ref": "t1:policy:0", "record": None}, ids) == "t1"
    assert quarantine_task_id({"row_ref": "c9", "record": json.dumps({"task_id": "t2"})}, ids) == "t2"
    assert quarantine_task_id({"row_ref": "manifest.jsonl:3", "record": "{}"}, ids) is None


def test_every_origin_has_a_colour_and_the_readme_says_what_each_means():
    assert set(ORIGIN_COLOURS) == set(COLOUR_MEANINGS) == {*ORIGINS, "annotation"}
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name, colour in ORIGIN_COLOURS.items():
        assert re.search(rf"`{name}`.*{colour}", readme), f"README's colour table lacks {name} {colour}"
