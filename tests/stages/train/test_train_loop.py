"""The train stage on the tiny model: the loss falls, a crash resumes exactly, LoRA, every loss, the stage spec."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from stages.lib.errors import ConfigError
from stages.base import ShardInputs, ShardOutput
from stages.train import LOSSES, SPEC, TrainConfig, train_model
from stages.train.stage import train_split
from stages.lib.models.digest import model_digest

from train_tables import make_listwise


def _config(model_dir: Path, **kw) -> TrainConfig:
    base = dict(model=str(model_dir), device="cpu", learning_rate=1e-3, beta=1.0, micro_batch_size=3, save_every=100)
    return TrainConfig(**(base | kw))


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(model_dir) / "model.safetensors"))


def _log(result) -> list[dict]:
    return [json.loads(line) for line in Path(result["log_path"]).read_text().splitlines()]


def test_loss_falls_on_a_fixed_batch(tiny_model_dir, train_tables, tmp_path):
    tasks, listwise = train_tables
    result = train_model(_config(tiny_model_dir, max_steps=12), tasks, listwise, tmp_path)
    log = _log(result)
    assert [r["step"] for r in log] == list(range(1, 13))
    assert log[0]["loss"] == pytest.approx(0.693147, abs=1e-4)  # policy == reference: every s_i − s_j = 0
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    assert log[-1]["reward_accuracy"] > 0.8 and log[-1]["reward_margin"] > 0
    before = _weights(str(tiny_model_dir))
    after = _weights(result["model_dir"])
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (Path(result["model_dir"]) / "processor_config.json").exists() or (Path(result["model_dir"]) / "preprocessor_config.json").exists()


class _Crash(Exception):
    pass


@pytest.mark.parametrize("lora", [False, True])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_model_dir, train_tables, tmp_path, lora):
    tasks, listwise = train_tables
    # micro_batch_size 1 over 3 lists: the 5 steps cross an epoch boundary; lora adds dropout (RNG state)
    cfg = _config(tiny_model_dir, max_steps=5, micro_batch_size=1, save_every=2, lora=lora, lora_r=4, lora_alpha=8,
                  lora_dropout=0.2 if lora else 0.0, lora_merge=True)
    straight = train_model(cfg, tasks, listwise, tmp_path / "straight")

    def crash_at_3(record):
        if record["step"] == 3:
            raise _Crash

    with pytest.raises(_Crash):
        train_model(cfg, tasks, listwise, tmp_path / "resumed", on_step=crash_at_3)
    resumed = train_model(cfg, tasks, listwise, tmp_path / "resumed")
    assert resumed["resumed_from"] == 2 and resumed["steps"] == straight["steps"] == 5
    a, b = _weights(straight["model_dir"]), _weights(resumed["model_dir"])
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert [r["step"] for r in _log(resumed)] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in _log(resumed)] == pytest.approx([r["loss"] for r in _log(straight)], rel=1e-6)


def test_resume_refuses_a_changed_config(tiny_model_dir, train_tables, tmp_path):
    tasks, listwise = train_tables
    train_model(_config(tiny_model_dir, max_steps=1, save_every=1), tasks, listwise, tmp_path)
    # more steps is fine; another learning rate is not
    assert train_model(_config(tiny_model_dir, max_steps=2, save_every=1), tasks, listwise, tmp_path)["resumed_from"] == 1
    with pytest.raises(ConfigError, match="learning_rate"):
        train_model(_config(tiny_model_dir, max_steps=3, learning_rate=1e-4), tasks, listwise, tmp_path)


def test_truncated_newest_checkpoint_and_a_higher_max_steps_resume_from_the_one_before(tiny_model_dir, train_tables, tmp_path):
    """Issue 11, item 10: the damaged checkpoint is skipped (and named in the log), not a bare error."""
    tasks, listwise = train_tables
    train_model(_config(tiny_model_dir, max_steps=2, save_every=1, keep_checkpoints=3), tasks, listwise, tmp_path)
    newest = tmp_path / "checkpoints" / "step-00000002" / "checkpoint.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    result = train_model(_config(tiny_model_dir, max_steps=3, save_every=1, keep_checkpoints=3), tasks, listwise, tmp_path)
    assert result["resumed_from"] == 1 and result["steps"] == 3


def test_lora_trains_only_adapters_and_saves_a_plain_model(tiny_model_dir, train_tables, tmp_path):
    tasks, listwise = train_tables
    cfg = _config(tiny_model_dir, max_steps=3, lora=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"])
    result = train_model(cfg, tasks, listwise, tmp_path)
    before, after = _weights(str(tiny_model_dir)), _weights(result["model_dir"])
    assert before.keys() == after.keys()  # merged: no lora_ keys left
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed)
    log = _log(result)
    assert log[-1]["loss"] < log[0]["loss"]


def test_lora_without_merge_saves_the_adapter(tiny_model_dir, train_tables, tmp_path):
    tasks, listwise = train_tables
    cfg = _config(tiny_model_dir, max_steps=1, lora=True, lora_r=2, lora_alpha=4, lora_merge=False)
    result = train_model(cfg, tasks, listwise, tmp_path)
    assert (Path(result["model_dir"]) / "adapter_config.json").exists()


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_runs_one_step(tiny_model_dir, train_tables, tmp_path, loss):
    tasks, listwise = train_tables
    result = train_model(_config(tiny_model_dir, loss=loss, beta=None, max_steps=1), tasks, listwise, tmp_path)
    (record,) = _log(result)
    # the log writes NaN as null: a NaN or missing loss fails here (float(None) raises), as does inf
    assert record["lists"] == 3 and isinstance(record["loss"], float) and math.isfinite(record["loss"])
    assert result["steps"] == 1 and result["final_loss"] == record["loss"]


def test_reference_free_leanpo_trains_without_ref_logps(tiny_model_dir, train_tables, tmp_path):
    tasks, _ = train_tables
    result = train_model(_config(tiny_model_dir, loss="leanpo", max_steps=1), tasks, make_listwise(), tmp_path)
    assert result["steps"] == 1


def test_losses_needing_a_reference_refuse_lists_without_one(tiny_model_dir, train_tables, tmp_path):
    tasks, _ = train_tables
    with pytest.raises(ConfigError, match="reference stage"):
        train_model(_config(tiny_model_dir, loss="dpo", max_steps=1), tasks, make_listwise(), tmp_path)


def test_lists_without_signal_are_an_error(tiny_model_dir, train_tables, tmp_path):
    tasks, listwise = train_tables
    flat = listwise.set_column(
        listwise.schema.get_field_index("rewards"), "rewards", [[[0.5] * 4] * listwise.num_rows]
    )
    with pytest.raises(ConfigError, match="no reward spread"):
        train_model(_config(tiny_model_dir, max_steps=1), tasks, flat, tmp_path)


def test_config_checks_name_the_field():
    with pytest.raises(ValidationError, match="lora_target_modules"):
        TrainConfig(lora=True, lora_target_modules=[])
    with pytest.raises(ValidationError, match="warmup_steps"):
        TrainConfig(max_steps=2, warmup_steps=5)
    with pytest.raises(ValidationError, match="loss"):
        TrainConfig(loss="orpo")


def test_stage_spec_and_run_shard(tiny_model_dir, train_tables, tmp_path):
    assert SPEC.name == "train" and SPEC.fan_in and SPEC.uses_model and SPEC.writes == ("model",)
    assert SPEC.reads == ("tasks", "listwise") and SPEC.config_cls is TrainConfig
    tasks, listwise = train_tables
    inputs = ShardInputs(tables={"tasks": tasks, "listwise": listwise})
    out = SPEC.run_shard(inputs, ShardOutput("train", 0, tmp_path / "scratch"), _config(tiny_model_dir, max_steps=2))
    assert set(out.tables) == {"model"} and out.metrics["steps"] == 2 and out.metrics["lists"] == 3
    assert out.artifacts[0] == str(tmp_path / "scratch" / "model")
    (model,) = out.tables["model"].to_pylist()
    assert model["model_dir"] == out.artifacts[0] and model["steps"] == 2 and model["loss"] == "perpo"
    assert model["weights_sha256"] == model_digest(out.artifacts[0])
    assert (tmp_path / "scratch" / "checkpoints" / "step-00000002" / "checkpoint.pt").exists()


def test_held_out_tasks_never_reach_training(train_tables):
    tasks, _ = train_tables
    splits = ["eval" if i == 0 else ("train" if i == 1 else None) for i in range(tasks.num_rows)]
    marked = tasks.drop_columns(["split"]).append_column("split", pa.array(splits, pa.string()))
    kept = train_split(marked).column("task_id").to_pylist()
    assert kept == tasks.column("task_id").to_pylist()[1:]


def test_povid_needs_the_references_image_term(tiny_model_dir, train_tables, tmp_path):
    tasks, listwise = train_tables
    without = listwise.set_column(listwise.schema.get_field_index("ref_povid_logps"), "ref_povid_logps",
                                  pa.nulls(listwise.num_rows, listwise.schema.field("ref_povid_logps").type))
    with pytest.raises(ConfigError, match="povid_image_term = true"):
        train_model(_config(tiny_model_dir, loss="povid", max_steps=1), tasks, without, tmp_path)


def test_povid_two_stage_schedule_trains_stage_2_from_the_merged_stage_1_model(tiny_model_dir, train_tables, tmp_path):
    from stages.train.povid_schedule import reference_under, train_povid_two_stage

    tasks, listwise = train_tables
    cfg = _config(tiny_model_dir, loss="povid", beta=None, povid_two_stage=True, max_steps=2, lora=True, lora_r=4,
                  lora_alpha=8, lora_dropout=0.0)
    result = train_povid_two_stage(cfg, tasks, listwise, tmp_path)
    assert result["stage1_steps"] == 2 and result["steps"] == 2
    stage1 = Path(result["stage1_model_dir"])
    assert stage1 == tmp_path / "stage1" / "model" and (stage1 / "model.safetensors").is_file()
    assert any(not torch.equal(v, _weights(str(tiny_model_dir))[k]) for k, v in _weights(str(stage1)).items())
    # stage 2's reference is the stage-1 model: its log-probs differ from the reference stage's (the initial model)
    again = reference_under(stage1, cfg, tasks, listwise)
    assert again["ref_logps"].to_pylist() != listwise["ref_logps"].to_pylist()
    assert all(len(t) == len(r) for t, r in zip(again["ref_povid_logps"].to_pylist(), again["responses"].to_pylist()))
    log = _log(result)
    assert len(log) == 2 and all(math.isfinite(r["loss"]) for r in log)
    # POVID's stage 1 alone (povid_stage = 1) is plain DPO vs the hallucinations and needs no image term
    only1 = train_model(_config(tiny_model_dir, loss="povid", povid_stage=1, max_steps=1), tasks, listwise, tmp_path / "s1")
    assert only1["steps"] == 1


def test_per_module_learning_rates_group_the_projector_and_the_vision_tower(tiny_model_dir):
    from stages.vlm.engine_config import EngineConfig
    from stages.vlm.load import load_vlm
    from stages.train.loop import param_groups, warmup_steps

    model, _ = load_vlm(EngineConfig(model=str(tiny_model_dir), device="cpu"), "test")
    names = {id(p): n for n, p in model.named_parameters()}
    cfg = TrainConfig(learning_rate=1e-5, projector_learning_rate=2e-5, vision_tower_learning_rate=5e-7)
    main, vision, projector = param_groups(model, cfg)
    assert [g["lr"] for g in (main, vision, projector)] == [1e-5, 5e-7, 2e-5]
    assert all("multi_modal_projector" in names[id(p)] for p in projector["params"]) and projector["params"]
    assert all("vision_tower" in names[id(p)] for p in vision["params"]) and vision["params"]
    assert not any("vision_tower" in names[id(p)] or "projector" in names[id(p)] for p in main["params"])
    assert sum(len(g["params"]) for g in (main, vision, projector)) == len(list(model.parameters()))
    (only,) = param_groups(model, TrainConfig(learning_rate=1e-5))  # unset: one group at learning_rate
    assert only["lr"] == 1e-5 and len(only["params"]) == len(list(model.parameters()))
    assert warmup_steps(TrainConfig(warmup_ratio=0.03), 100) == 3 and warmup_steps(TrainConfig(warmup_steps=4), 100) == 4
    with pytest.raises(ValidationError, match="warmup_steps = 2 and warmup_ratio = 0.1 are both set"):
        TrainConfig(warmup_steps=2, warmup_ratio=0.1)


def test_llava_lora_recipe_trains_the_projector_in_full_and_leaves_the_vision_tower(tiny_model_dir, train_tables, tmp_path):
    tasks, listwise = train_tables
    cfg = _config(tiny_model_dir, max_steps=2, lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                  lora_exclude_modules=["vision_tower", "multi_modal_projector"],
                  lora_modules_to_save=["multi_modal_projector"], projector_learning_rate=1e-2)
    result = train_model(cfg, tasks, listwise, tmp_path)
    before, after = _weights(str(tiny_model_dir)), _weights(result["model_dir"])
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("multi_modal_projector" in k for k in changed)  # trained in full, at its own rate
    assert not any("vision_tower" in k for k in changed)  # no adapter there, and frozen
    assert any("language_model" in k for k in changed)  # the adapters, merged
