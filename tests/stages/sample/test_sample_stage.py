import json

import pytest

from data_schemas.tables import validate_table
from stages.base import ShardInputs, ShardOutput
from stages.sample import SPEC, SampleConfig
from stages.sample.stage import run_shard


def _run(tasks, sampler, tmp_path, **config):
    cfg = SampleConfig(model="unused-when-resources-given", max_tokens=6, **config)
    output = ShardOutput(stage="sample", index=0, scratch_dir=tmp_path / "scratch")
    return run_shard(ShardInputs(tables={"tasks": tasks}, resources=sampler), output, cfg)


def test_spec():
    assert SPEC.name == "sample" and SPEC.reads == ("tasks",) and SPEC.writes == ("candidates",)
    assert SPEC.config_cls is SampleConfig and SPEC.uses_model and SPEC.setup is not None


def test_run_shard_writes_valid_candidates(tasks_table, tiny_sampler, tmp_path):
    result = _run(tasks_table, tiny_sampler, tmp_path, n=3)
    table = result.tables["candidates"]
    assert table.schema == validate_table(table, "candidates").schema
    rows = table.to_pylist()
    assert len(rows) == 3 * 3 + 3
    assert [r["cand_id"] for r in rows[:4]] == ["t-ground:policy:0", "t-ground:policy:1", "t-ground:policy:2", "t-ground:ground_truth:0"]
    assert [r["task_id"] for r in rows] == ["t-ground"] * 4 + ["t-vqa"] * 4 + ["t-ocr"] * 4
    policy = [r for r in rows if r["origin"] == "policy"]
    assert all(r["model"] == tiny_sampler.model_name and r["logprob_sum"] <= 0 for r in policy)
    assert all(json.loads(r["sampling"])["n"] == 3 for r in policy)
    assert {r["text"] for r in rows if r["origin"] == "ground_truth"} == {"[4, 6, 24, 20]", "blue", "HELLO 42"}
    assert result.quarantine == []
    assert result.metrics["policy_candidates"] == 9 and result.metrics["ground_truth_candidates"] == 3
    assert result.metrics["generated_tokens"] == sum(r["n_tokens"] for r in policy)


def test_metrics_add_up_over_shards(tasks_table, tiny_sampler, tmp_path):
    """The runner sums metrics over shards, so every metric of two shards must add up to the one-shard value."""
    whole = _run(tasks_table, tiny_sampler, tmp_path, n=2).metrics
    parts = [_run(tasks_table.slice(0, 1), tiny_sampler, tmp_path, n=2).metrics,
             _run(tasks_table.slice(1), tiny_sampler, tmp_path, n=2).metrics]
    assert set(whole) == set(parts[0]) == set(parts[1])
    for key in set(whole) - {"sample_seconds"}:  # wall time adds up but is not reproducible
        assert parts[0][key] + parts[1][key] == pytest.approx(whole[key]), key


def test_rerun_is_identical_and_independent_of_shard_seed_and_batch(tasks_table, tiny_sampler, tmp_path):
    first = _run(tasks_table, tiny_sampler, tmp_path, n=2).tables["candidates"]
    batch_size = tiny_sampler.batch_size
    tiny_sampler.batch_size = 1
    try:
        second = _run(tasks_table.slice(1), tiny_sampler, tmp_path, n=2).tables["candidates"]
    finally:
        tiny_sampler.batch_size = batch_size
    a, b = first.slice(3).to_pylist(), second.to_pylist()
    # logits differ in the last float bits between batch shapes: texts are equal, log-probs nearly
    assert [r["logprob_sum"] for r in a] == pytest.approx([r["logprob_sum"] for r in b], abs=1e-5)
    for r in a + b:
        r.pop("logprob_sum")
    assert a == b


def test_without_ground_truth(tasks_table, tiny_sampler, tmp_path):
    rows = _run(tasks_table, tiny_sampler, tmp_path, n=2, include_ground_truth=False).tables["candidates"].to_pylist()
    assert len(rows) == 6 and {r["origin"] for r in rows} == {"policy"}


def test_bad_tasks_are_quarantined_without_candidates(tasks_table, tiny_sampler, tmp_path):
    import io

    from PIL import Image

    rows = tasks_table.to_pylist()
    rows[0]["image"] = {"bytes": b"\x89PNG broken", "path": "bad.png"}
    buf = io.BytesIO()  # a 1x1 image is valid: the processor resizes it
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    rows[1]["image"] = {"bytes": buf.getvalue(), "path": "tiny.png"}
    result = _run(validate_table(rows, "tasks"), tiny_sampler, tmp_path, n=2)
    assert [(q["row_ref"], q["reason"]) for q in result.quarantine] == [("t-ground", "corrupt_image")]
    assert {r["task_id"] for r in result.tables["candidates"].to_pylist()} == {"t-vqa", "t-ocr"}


def test_rejected_image_goes_to_quarantine(tasks_table, tiny_sampler, tmp_path, monkeypatch):
    from PIL import Image

    import stages.sample.rows as rows_module

    real_decode = rows_module.decode_image_cell

    def decode(cell):  # hand the sampler an image the processor refuses (PNG cannot hold a 0-width image)
        return Image.new("RGB", (0, 4)) if cell["path"] == "t-vqa.png" else real_decode(cell)

    monkeypatch.setattr(rows_module, "decode_image_cell", decode)
    result = _run(tasks_table, tiny_sampler, tmp_path, n=2)
    assert [(q["row_ref"], q["reason"]) for q in result.quarantine] == [("t-vqa", "image_rejected")]
    assert "t-vqa" not in {r["task_id"] for r in result.tables["candidates"].to_pylist()}
    assert result.metrics["quarantined_tasks"] == 1


def test_empty_shard(tasks_table, tiny_sampler, tmp_path):
    result = _run(tasks_table.slice(0, 0), tiny_sampler, tmp_path)
    assert result.tables["candidates"].num_rows == 0 and result.quarantine == []


def test_setup_loads_the_configured_model(tiny_model_dir):
    sampler = SPEC.setup(SampleConfig(model=str(tiny_model_dir), device="cpu"))
    assert sampler.backend == "hf" and sampler.model_name == str(tiny_model_dir)


def test_setup_with_the_default_missing_model_names_the_fix(tmp_path, monkeypatch):
    from stages.lib.errors import ModelError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="make-tiny-model --out runs/_models/tiny-vlm"):
        SPEC.setup(SampleConfig())
