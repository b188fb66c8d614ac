"""The viewer in a real browser: headless Chromium opens the generated site from file:// (no server).

Filters change the counts shown, a task page shows its image and boxes, images that are missing show
as such, and flagging lists downloads a review.jsonl that the rank stage then honours.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.runner import run_pipeline
from pipeline.store import RunStore
from pipeline.viewer import write_viewer
from tests.pipeline.viewer.test_viewer_writer import data

pytestmark = pytest.mark.browser


def open_page(page, viewer: Path, name: str) -> None:
    file, _, anchor = name.partition("#")
    page.goto((viewer / file).as_uri() + (f"#{anchor}" if anchor else ""))
    page.wait_for_selector("body[data-ready]", timeout=15_000)


def shown(page) -> int:
    return int(page.get_by_test_id("n-shown").inner_text())


def test_filters_change_the_counts_shown(page, viewer_run):
    viewer = viewer_run / "viewer"
    facets, summary = data(viewer, "facets"), data(viewer, "summary")
    types = [summary["task_types"][ord(c) - 32] for c in facets["type"]]
    open_page(page, viewer, "index.html")
    assert page.get_by_test_id("count").inner_text() == "9 of 9 tasks"
    assert page.locator("#rows tbody tr").count() == 9

    page.get_by_test_id("facet-type-ocr").uncheck()
    page.wait_for_function("document.querySelector('[data-testid=n-shown]').textContent === '%d'" % (9 - types.count("ocr")))
    assert page.locator("#rows tbody tr").count() == 9 - types.count("ocr")
    page.get_by_test_id("facet-type-ocr").check()

    best = {o: [ord(c) - 32 for c in facets["best"][o]] for o in summary["origins"]}  # 0..100, 101 unscored, 102 absent
    page.get_by_test_id("origin-hallucination").check()
    assert shown(page) == sum(code != 102 for code in best["hallucination"])
    page.get_by_test_id("origin-hallucination").uncheck()

    page.get_by_test_id("reward-lo").fill("1")  # best reward 1.0: every list whose ground truth made it
    page.get_by_test_id("reward-lo").dispatch_event("change")
    assert shown(page) == sum(max(best[o][i] if best[o][i] <= 100 else -1 for o in best) == 100 for i in range(9))
    page.get_by_test_id("origin-policy").check()  # ... of the policy's own answers: none of the random model's
    assert shown(page) == sum(best["policy"][i] == 100 for i in range(9))
    page.get_by_test_id("origin-policy").uncheck()
    page.get_by_test_id("reward-lo").fill("0")
    page.get_by_test_id("reward-lo").dispatch_event("change")

    failing = sum(ord(c) - 32 > 0 for c in facets["pfail"])
    page.get_by_test_id("parse").select_option("yes")
    assert shown(page) == failing
    page.get_by_test_id("parse").select_option("no")
    assert shown(page) == 9 - failing
    assert not page.js_errors


def test_a_task_page_shows_its_image_and_boxes(page, viewer_run):
    viewer = viewer_run / "viewer"
    facets = data(viewer, "facets")
    summary = data(viewer, "summary")
    pos = next(i for i, c in enumerate(facets["type"]) if summary["task_types"][ord(c) - 32] == "grounding")
    rec = data(viewer, "tasks/chunk-00000")[pos]
    open_page(page, viewer, f"task.html#p={pos}")
    assert rec["id"] in page.get_by_test_id("task-title").inner_text()
    image = page.get_by_test_id("task-image")
    assert image.evaluate("img => img.complete && img.naturalWidth") > 0
    assert page.locator("svg.boxes rect.gt-box").count() == len(rec["gt_boxes"]) > 0
    drawn = sum(len(c["boxes"]) for c in rec["list"])
    assert page.locator("svg.boxes rect.cand-box").count() == drawn > 0
    assert page.get_by_test_id("response").count() == len(rec["list"]) + len(rec["others"])
    assert "IoU" in page.get_by_test_id("detail").first.inner_text()
    page.get_by_test_id("next-task").click()
    page.wait_for_function(f"document.querySelector('[data-testid=task-title]').textContent.includes('{facets['ids'][pos + 1]}')")
    assert not page.js_errors


def _break_first_image(run: Path) -> None:
    """Give the run's first task image bytes that no decoder reads (as a damaged corpus file would)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = RunStore(run).table_files("ingest", "tasks", "tasks")[0]
    table = pq.read_table(path)
    images = table["image"].to_pylist()
    images[0] = {"bytes": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "path": images[0]["path"]}
    pq.write_table(table.set_column(table.schema.get_field_index("image"), "image",
                                    pa.array(images, table.schema.field("image").type)), path)


def test_images_that_fail_to_render_show_as_such_not_as_broken_images(page, run_copy):
    _break_first_image(run_copy)
    write_viewer(load_config(run_copy / "config.toml"), run_copy)
    viewer = run_copy / "viewer"
    open_page(page, viewer, "task.html#p=0")
    assert "image does not decode" in page.get_by_test_id("img-missing").inner_text()
    assert page.get_by_test_id("task-image").count() == 0
    open_page(page, viewer, "index.html")
    first = page.locator("#rows tbody tr").first
    assert first.locator("[data-testid=img-missing]").count() == 1 and first.locator("img").count() == 0
    page.get_by_test_id("image").select_option("yes")
    assert shown(page) == 1
    broken = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).length")
    assert broken == 0
    open_page(page, viewer, "quarantine.html")
    rows = page.get_by_test_id("q-row")
    assert rows.count() == data(viewer, "summary")["quarantine"]["n"]
    ingest_rows = rows.filter(has_text="ingest")
    assert ingest_rows.count() == 2 and ingest_rows.first.locator(".img-missing").count() == 1
    assert page.locator("img").count() == 0


def _download_review(page, tmp_path: Path) -> Path:
    with page.expect_download() as info:
        page.get_by_test_id("download-review").click()
    target = tmp_path / "review.jsonl"
    info.value.save_as(target)
    return target


def test_flags_download_a_review_that_rank_honours(page, run_copy, tmp_path):
    viewer = run_copy / "viewer"
    records = data(viewer, "tasks/chunk-00000")
    listed = [i for i, r in enumerate(records) if r["status"] == "ranked" and len(r["list"]) >= 3]
    dropped, reordered = listed[0], listed[1]

    open_page(page, viewer, f"task.html#p={dropped}")
    page.get_by_test_id("flag-bad_ground_truth").check()  # proposes "drop"
    assert page.get_by_test_id("decision-drop").is_checked()
    open_page(page, viewer, f"task.html#p={reordered}")
    page.get_by_test_id("down-0").click()  # the best response goes second
    page.wait_for_selector("[data-testid=reset-order]")
    assert page.get_by_test_id("n-reviewed").inner_text() == "2"
    review = _download_review(page, tmp_path)

    entries = {e["task_id"]: e for e in map(json.loads, review.read_text().splitlines())}
    drop_id, order_id = records[dropped]["id"], records[reordered]["id"]
    assert entries[drop_id]["decision"] == "drop" and entries[drop_id]["flags"] == ["bad_ground_truth"]
    want = [c["cand_id"] for c in records[reordered]["list"]]
    want[0], want[1] = want[1], want[0]
    assert entries[order_id]["order"] == want and entries[order_id]["decision"] == "keep"

    open_page(page, viewer, "index.html")  # the index shows what is reviewed
    page.get_by_test_id("reviewed").select_option("yes")
    assert shown(page) == 2

    cfg = load_config(run_copy / "config.toml", [f'rank.review="{review}"'])
    summaries = {s.stage: s for s in run_pipeline(cfg, run_copy, use_ray=False)}
    assert [summaries[s].shards_run for s in ("ingest", "sample", "perturb", "score")] == [0, 0, 0, 0]
    assert summaries["rank"].shards_run == summaries["rank"].shards_total
    lists = {r["task_id"]: r for r in RunStore(run_copy).read_table("reference", "listwise", "listwise").to_pylist()}
    assert drop_id not in lists
    assert lists[order_id]["cand_ids"] == want
    pairs = RunStore(run_copy).read_table("rank", "pairs", "pairs").to_pylist()
    assert drop_id not in {p["task_id"] for p in pairs}
    assert not page.js_errors


def test_the_eval_page_shows_the_runs_eval_table(page, viewer_run, tmp_path, monkeypatch):
    import pyarrow as pa

    from pipeline.viewer import writer

    table = pa.table({"model": ["policy", "trained"], "task_type": ["ocr", "ocr"], "mean_reward": [0.12, 0.34]})
    monkeypatch.setattr(writer, "_eval_tables", lambda store, writers: {"eval": table})
    site = write_viewer(load_config(viewer_run / "config.toml"), viewer_run, tmp_path / "site")
    assert data(site, "summary")["eval"] == [
        {"name": "eval", "n": 2, "columns": ["model", "task_type", "mean_reward"], "pages": 1, "per_page": 500}
    ]
    open_page(page, site, "eval.html")
    assert page.locator("#erows tbody tr").count() == 2
    assert page.locator("#erows tbody tr").nth(1).inner_text().split("\t") == ["trained", "ocr", "0.3400"]
    open_page(page, site, "index.html")
    assert page.locator("#nav-eval").count() == 1
