"""The dataset card's example lists: one PNG per task type, drawn from the run, shown in the exported card."""

from __future__ import annotations

import io

import pyarrow as pa
from PIL import Image

from pipeline.config import load_config
from pipeline.outputs import export_run, write_run_report
from pipeline.store import RunStore
from pipeline.viewer.gallery import draw_example, pick_examples, write_gallery


def test_pick_examples_takes_the_widest_spread_per_task_type():
    listwise = pa.table({
        "task_id": ["a", "b", "c", "d"], "task_type": ["ocr", "ocr", "vqa", "caption"],
        "rewards": [[1.0, 0.9], [1.0, 0.0], [1.0, 0.5], None], "responses": [["x", "y"]] * 3 + [["p", "q", "r"]],
    })
    assert pick_examples(listwise) == ["b", "c", "d"]
    assert pick_examples(listwise, k=1) == ["b"]


def test_gallery_draws_one_example_per_task_type(viewer_run, tmp_path):
    cfg = load_config(viewer_run / "config.toml")
    files = write_gallery(cfg, viewer_run, tmp_path / "examples")
    types = set(RunStore(viewer_run).read_table("reference", "listwise", "listwise", columns=["task_type"])["task_type"].to_pylist())
    assert [f.name for f in files] == [f"example-{i + 1}.png" for i in range(len(types))]
    with Image.open(files[0]) as img:
        assert img.format == "PNG" and img.width == 960


def test_an_example_whose_image_does_not_decode_is_still_drawn():
    record = {"id": "t", "type": "vqa", "prompt": "p\x00?", "answer": "4", "gt_boxes": [],
              "list": [{"origin": "policy", "reward": 0.5, "text": "\ufffd 4", "boxes": []}]}
    with Image.open(io.BytesIO(draw_example(record, b"broken"))) as img:
        assert img.size[0] == 960


def test_exported_card_shows_the_example_gallery(run_copy):
    cfg = load_config(run_copy / "config.toml")
    write_run_report(cfg, run_copy)
    folder = export_run(run_copy, cfg=cfg)
    card = (folder / "README.md").read_text()
    assert "## Example lists" in card
    shown = [line[line.index("(") + 1 : -1] for line in card.splitlines() if line.startswith("![example-")]
    assert shown and all((folder / path).is_file() for path in shown)
