"""run_shard on hand-built tables: validated candidates, pass-through rows unchanged, new rows reproducible."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from perturb_helpers import ScriptedSampler, policy_candidates, standard_tasks
from pydantic import ValidationError

from data_schemas import decode_image_cell, validate_table
from stages.lib.errors import ConfigError
from stages.base import ShardInputs, ShardOutput
from stages.perturb import SPEC, DistortionSpec, PerturbConfig, apply_distortion, make_gallery, run_shard, setup
from tests.factories import png_bytes, task_row
from stages.perturb.formats import is_valid_hallucination


def _output(tmp_path: Path) -> ShardOutput:
    return ShardOutput(stage="perturb", index=0, scratch_dir=tmp_path / "_scratch" / "00000")


def _run(config: PerturbConfig, tasks: pa.Table, cands: pa.Table, sampler, tmp_path: Path):
    return run_shard(ShardInputs({"tasks": tasks, "candidates": cands}, resources=sampler), _output(tmp_path), config)


def _config(**over) -> PerturbConfig:
    base = {
        "model": "unused",
        "hallucination": {"n": 2},
        "distortion": {"distortions": [{"name": "diffusion"}, {"name": "jpeg", "label": "jpeg_low"}], "n_answers": 2},
    }
    base.update(over)
    return PerturbConfig.model_validate(base)


def test_spec_declares_tables_and_model():
    assert (SPEC.name, SPEC.reads, SPEC.writes) == ("perturb", ("tasks", "candidates"), ("candidates",))
    assert SPEC.config_cls is PerturbConfig and SPEC.uses_model and SPEC.setup is setup


def test_run_shard_passes_through_and_adds_rows(tmp_path):
    tasks, cands = standard_tasks(), policy_candidates(standard_tasks())
    sampler = ScriptedSampler()
    result = _run(_config(), tasks, cands, sampler, tmp_path)
    table = result.tables["candidates"]
    assert validate_table(table, "candidates").equals(table)
    rows = table.to_pylist()
    assert rows[: cands.num_rows] == cands.to_pylist()  # pass-through, unchanged and first
    new = rows[cands.num_rows :]
    ids = [r["cand_id"] for r in rows]
    assert len(ids) == len(set(ids))

    halluc = [r for r in new if r["origin"] == "hallucination"]
    by_task = {t["task_id"]: t for t in tasks.to_pylist()}
    assert {r["task_id"] for r in halluc} == {"t-ground", "t-ocr", "t-vqa", "t-cap"}  # t-empty has no answer
    for r in halluc:
        task = by_task[r["task_id"]]
        assert r["cand_id"] == f"{r['task_id']}:hallucination:{r['sample_index']}"
        assert is_valid_hallucination(task["answer"], r["text"], task["task_type"])
        d = json.loads(r["distortion"])
        assert d["mode"] == "rule" and d["kinds"] and d["changes"] and isinstance(d["seed"], int)
        assert r["finish_reason"] == "injected" and r["seed"] == d["seed"]
    assert result.metrics["hallucination_skipped_empty_answer"] == 1

    distorted = [r for r in new if r["origin"] == "distorted_image"]
    assert len(distorted) == 5 * 2 * 2  # tasks x distortions x n_answers
    assert {r["cand_id"].rsplit(":", 2)[1] for r in distorted} == {"diffusion", "jpeg_low"}
    assert all(r["model"] == "scripted-model" and r["n_tokens"] is not None for r in distorted)
    assert result.metrics["distorted_rows"] == 20 and result.quarantine == []


def test_distorted_rows_reproduce_the_image_the_model_saw(tmp_path):
    tasks, cands = standard_tasks(), policy_candidates(standard_tasks(), per_task=0)
    sampler = ScriptedSampler()
    result = _run(_config(), tasks, cands, sampler, tmp_path)
    seen = {r.request_id: np.asarray(r.image) for r in sampler.requests}
    images = {t["task_id"]: decode_image_cell(t["image"]) for t in tasks.to_pylist()}
    checked = 0
    for r in result.tables["candidates"].to_pylist():
        if r["origin"] != "distorted_image" or r["sample_index"] != 0:
            continue
        d = json.loads(r["distortion"])
        spec = DistortionSpec(name=d["name"], label=d["label"], params=d["params"])
        again = apply_distortion(images[r["task_id"]], spec, d["seed"])
        np.testing.assert_array_equal(again, seen[f"{r['task_id']}:distorted_image:{d['label']}"])
        checked += 1
    assert checked == 10
    # requests are seeded per (task, distortion), so a rerun asks for exactly the same samples
    rerun = ScriptedSampler()
    _run(_config(), tasks, cands, rerun, tmp_path)
    assert [r.seed for r in rerun.requests] == [r.seed for r in sampler.requests]


def test_bad_image_and_rejected_request_are_quarantined(tmp_path):
    rows = standard_tasks().to_pylist()[:2]
    rows.append(task_row("t-bad", "vqa", "What colour?", image=b"not an image", answer="red"))
    tasks = validate_table(rows, "tasks")
    sampler = ScriptedSampler(fail_ids={"t-ocr:distorted_image:diffusion"})
    result = _run(_config(), tasks, policy_candidates(tasks, 1), sampler, tmp_path)
    reasons = sorted(q["reason"] for q in result.quarantine)
    assert reasons == ["corrupt_image", "generation_failed"]
    out = result.tables["candidates"].to_pylist()
    assert any(r["task_id"] == "t-bad" and r["origin"] == "hallucination" for r in out)  # text rows still made
    assert not any(r["task_id"] == "t-bad" and r["origin"] == "distorted_image" for r in out)
    assert not any(r["cand_id"].startswith("t-ocr:distorted_image:diffusion") for r in out)
    assert result.metrics["image_decode_errors"] == 1 and result.metrics["distorted_sample_errors"] == 1


def test_a_distortion_that_fails_on_one_image_quarantines_only_that_row(tmp_path):
    """A legal 8x66000 image (OpenCV's JPEG encoder stops at 65,500 px a side): that row is quarantined, the
    shard goes on (issue 11, item 1)."""
    tall = png_bytes(size=(8, 66_000))
    rows = standard_tasks().to_pylist()[:2] + [task_row("t-tall", "vqa", "What colour?", image=tall, answer="red")]
    tasks = validate_table(rows, "tasks")
    config = _config(distortion={"distortions": [{"name": "jpeg"}], "n_answers": 1})
    result = _run(config, tasks, policy_candidates(tasks, 1), ScriptedSampler(), tmp_path)
    [bad] = result.quarantine
    assert (bad["row_ref"], bad["reason"]) == ("t-tall", "distortion_failed")
    assert "jpeg" in bad["message"] and "8x66000" in bad["message"] and "error" in bad["message"]
    distorted = {r["task_id"] for r in result.tables["candidates"].to_pylist() if r["origin"] == "distorted_image"}
    assert distorted == {"t-ground", "t-ocr"}
    assert result.metrics["distortion_errors"] == 1


def test_keep_images_writes_pngs_listed_as_artifacts(tmp_path):
    config = _config(distortion={"distortions": [{"name": "blur"}], "n_answers": 1, "keep_images": True})
    result = _run(config, standard_tasks(), policy_candidates(standard_tasks(), 0), ScriptedSampler(), tmp_path)
    assert len(result.artifacts) == 5
    for path in map(Path, result.artifacts):
        assert path.is_file() and path.parent == _output(tmp_path).scratch_dir and path.suffix == ".png"
    rows = [r for r in result.tables["candidates"].to_pylist() if r["origin"] == "distorted_image"]
    names = {json.loads(r["distortion"])["image"] for r in rows}
    assert names == {Path(p).name for p in result.artifacts}


def test_disabled_parts_and_setup_without_model(tmp_path):
    text_only = _config(distortion={"enabled": False})
    assert not text_only.needs_sampler() and setup(text_only) is None
    result = _run(text_only, standard_tasks(), policy_candidates(standard_tasks()), None, tmp_path)
    assert {r["origin"] for r in result.tables["candidates"].to_pylist()} == {"policy", "hallucination"}
    off = _config(enabled=False)
    result = _run(off, standard_tasks(), policy_candidates(standard_tasks()), None, tmp_path)
    assert result.tables["candidates"].num_rows == 10
    with pytest.raises(ConfigError, match=r"\[perturb\] engine.model is empty"):
        setup(PerturbConfig())


def test_empty_shard(tmp_path):
    tasks = standard_tasks().slice(0, 0)
    result = _run(_config(), tasks, policy_candidates(tasks), ScriptedSampler(), tmp_path)
    assert result.tables["candidates"].num_rows == 0


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"hallucination": {"iou_band": [0.5, 0.1]}}, r"iou_band=\[0.5, 0.1\]: need 0 <= low < high < 1"),
        ({"hallucination": {"kinds": []}}, r"kinds is empty"),
        ({"hallucination": {"kinds": ["colour"]}}, r"Input should be 'object', 'color'"),
        ({"distortion": {"distortions": [{"name": "blur"}, {"name": "blur"}]}}, r"labels \['blur'\] are used twice"),
        ({"distortion": {"distortions": [{"name": "jpeg", "params": {"q": 1}}]}}, r"accepted keys: quality_range"),
        ({"backend": "vllm", "device": "cpu"}, r"backend = 'vllm' needs a GPU"),
        ({"temperature": -1}, r"greater than or equal to 0"),
    ],
)
def test_config_errors_name_the_field(over, match):
    with pytest.raises(ValidationError, match=match):
        _config(**over)


def test_llm_mode_with_tiny_model_falls_back_and_says_so(tmp_path, tiny_model_dir):
    from stages.vlm.hf_engine import HFSampler

    config = _config(
        engine={"model": str(tiny_model_dir), "device": "cpu"},
        max_tokens=8,
        hallucination={"mode": "llm", "n": 1, "llm_retries": 2, "llm_max_tokens": 12},
        distortion={"distortions": [{"name": "diffusion"}], "n_answers": 2},
    )
    tasks = validate_table(standard_tasks().to_pylist()[:2], "tasks")  # grounding + ocr
    sampler = HFSampler(tiny_model_dir, device="cpu", batch_size=config.engine.batch_size)
    result = _run(config, tasks, policy_candidates(tasks, 1), sampler, tmp_path)
    rows = validate_table(result.tables["candidates"], "candidates").to_pylist()
    halluc = [r for r in rows if r["origin"] == "hallucination"]
    assert len(halluc) == 2
    for r in halluc:
        d = json.loads(r["distortion"])
        assert d["mode"] == "rule_fallback" and d["llm_attempts"] == 2 and sum(d["llm_rejections"].values()) == 2
        assert r["seed"] == d["seed"] and d["kinds"]
    distorted = [r for r in rows if r["origin"] == "distorted_image"]
    assert len(distorted) == 4 and all(r["model"] == str(tiny_model_dir) for r in distorted)
    assert result.metrics["hallucination_rule_fallback"] == 2


def test_llm_mode_accepts_valid_rewrites_and_records_the_model(tmp_path):
    def reply(req, i):  # a model that turns "white" into "black" in whatever answer it is shown
        return re.search(r"Correct (?:answer|transcription): (.*)", req.prompt).group(1).replace("white", "black")

    config = _config(hallucination={"mode": "llm", "n": 1, "llm_retries": 2}, distortion={"enabled": False})
    tasks = standard_tasks()
    result = _run(config, tasks, policy_candidates(tasks, 0), ScriptedSampler(reply), tmp_path)
    rows = {r["task_id"]: r for r in result.tables["candidates"].to_pylist()}
    cap = rows["t-cap"]
    assert cap["text"] == "A black dog sits on the left of a red bench near two bicycles."
    assert json.loads(cap["distortion"])["mode"] == "llm" and cap["model"] == "scripted-model"
    assert json.loads(cap["sampling"])["backend"] == "scripted"
    for tid in ("t-ground", "t-ocr", "t-vqa"):  # the reply equals the answer there: rejected, then rules
        d = json.loads(rows[tid]["distortion"])
        assert d["mode"] == "rule_fallback" and d["llm_rejections"] == {"same_as_answer": 2}
        assert rows[tid]["seed"] == d["seed"] and rows[tid]["model"] is None
    assert result.metrics["hallucination_llm"] == 1 and result.metrics["hallucination_rule_fallback"] == 3


def test_make_gallery_writes_png(tmp_path):
    from PIL import Image

    config = _config(distortion={"distortions": [{"name": "diffusion"}, {"name": "blur"}, {"name": "coarse_dropout"}]})
    out = make_gallery(standard_tasks(), config, tmp_path / "report" / "distortions.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > img.height  # 2 rows x 4 columns
    with pytest.raises(ValueError, match="no decodable image"):
        make_gallery(standard_tasks().slice(0, 0), config, tmp_path / "none.png")
