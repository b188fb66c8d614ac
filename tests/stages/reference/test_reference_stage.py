"""The reference stage: fills ref_logps / ref_n_tokens for every response, batched, and quarantines bad rows."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch
from pydantic import ValidationError

from data_schemas.images import decode_image_cell
from data_schemas.tables import validate_table
from stages.lib.errors import ConfigError, ModelError
from stages.base import ShardInputs, ShardOutput
from stages.reference import SCORERS, SETUPS, SPEC, ReferenceConfig, run_shard, setup
from stages.vlm.engine_config import Backend
from stages.vlm.logprobs import response_logprobs
from tests.factories import png_bytes, task_row


def _tables() -> tuple[pa.Table, pa.Table]:
    tasks, lists = [], []
    for tid, colour, responses in [("a", (255, 0, 0), ["red", "blue", "a red square"]), ("b", (0, 0, 255), ["blue", "green"])]:
        image = png_bytes(colour, (64, 64))
        tasks.append(task_row(tid, "vqa", "What colour is the shape?", image=image, width=64, height=64, answer=responses[0]))
        lists.append(
            {
                "task_id": tid, "task_type": "vqa", "prompt": "What colour is the shape?", "responses": responses,
                "rewards": [1.0 - i / len(responses) for i in range(len(responses))],
                "origins": ["policy"] * len(responses), "cand_ids": [f"{tid}{i}" for i in range(len(responses))],
                "logprob_sums": None, "n_tokens": None, "ref_logps": None, "ref_n_tokens": None,
            }
        )
    lists.append({**lists[0], "task_id": "missing"})
    return validate_table(tasks, "tasks"), validate_table(lists, "listwise")


@pytest.fixture(scope="module")
def config(tiny_model_dir) -> ReferenceConfig:
    return ReferenceConfig(engine={"model": str(tiny_model_dir), "device": "cpu", "batch_size": 2})


def test_fills_reference_logprobs_for_every_response(config, tmp_path):
    tasks, listwise = _tables()
    resources = setup(config)
    result = run_shard(ShardInputs({"tasks": tasks, "listwise": listwise}, resources), ShardOutput("reference", 0, tmp_path), config)
    out = result.tables["listwise"].to_pylist()
    assert [r["task_id"] for r in out] == ["a", "b"]
    assert result.metrics["lists"] == 2.0 and result.metrics["responses"] == 5.0
    assert result.metrics["reused_responses"] == 0.0  # the config has no [sample] to link: everything is scored
    assert result.metrics["scored_tokens"] == sum(sum(r["ref_n_tokens"]) for r in out)
    (bad,) = result.quarantine
    assert bad["row_ref"] == "missing" and bad["reason"] == "unknown_task"
    images = {r["task_id"]: decode_image_cell(r["image"]) for r in tasks.to_pylist()}
    for row in out:
        assert row["rewards"] == listwise.to_pylist()[0 if row["task_id"] == "a" else 1]["rewards"]  # other columns kept
        with torch.no_grad():
            for text, ref, n in zip(row["responses"], row["ref_logps"], row["ref_n_tokens"]):
                s, c = response_logprobs(resources.model, resources.processor, [images[row["task_id"]]], [row["prompt"]], [text], 1)
                assert ref == pytest.approx(s.item(), abs=1e-4) and n == c.item() and ref < 0


def test_run_shard_loads_the_model_when_no_setup_ran(config, tmp_path):
    tasks, listwise = _tables()
    result = run_shard(ShardInputs({"tasks": tasks, "listwise": listwise.slice(1, 1)}), ShardOutput("reference", 0, tmp_path), config)
    assert len(result.tables["listwise"].column("ref_logps")[0]) == 2


def test_empty_model_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\[reference\] engine.model"):
        setup(ReferenceConfig())


def test_a_bad_reference_model_names_the_reference_stage(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ModelError, match=r"^\[reference\] .*not an image-text model"):
        setup(ReferenceConfig(engine={"model": str(tmp_path), "device": "cpu"}))
    with pytest.raises(ModelError, match=r"^\[reference\] model path .* does not exist"):
        setup(ReferenceConfig(engine={"model": str(tmp_path / "missing"), "device": "cpu"}))


def test_spec():
    assert SPEC.name == "reference" and SPEC.reads == ("tasks", "listwise") and SPEC.writes == ("listwise",)
    assert SPEC.uses_model and SPEC.setup is setup and SPEC.config_cls is ReferenceConfig and not SPEC.fan_in


@pytest.mark.parametrize("backend", list(Backend))
def test_every_backend_has_a_setup_and_a_scorer(backend):
    assert backend in SETUPS and backend in SCORERS
    assert ReferenceConfig(engine={"backend": backend.value}).engine.backend is backend


def test_vllm_fields_are_ignored_by_hf_and_hf_fields_by_vllm():
    hf = ReferenceConfig(engine=dict(backend="hf", device="cpu", tensor_parallel_size=4, max_model_len=64, gpu_memory_utilization=0.5))
    assert hf.engine.tensor_parallel_size == 4  # accepted, unused: one pipeline.toml serves both backends
    vllm = ReferenceConfig(engine=dict(backend="vllm", batch_size=3, num_gpus=2, tensor_parallel_size=2), share_prompt=False)
    assert vllm.engine.batch_size == 3
    assert ReferenceConfig().engine.batch_size == 16 == ReferenceConfig(engine={"model": "m"}).engine.batch_size


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"backend": "vllm", "device": "cpu"}, r"backend = 'vllm' needs a GPU but device = 'cpu'"),
        ({"backend": "vllm", "num_gpus": 1, "tensor_parallel_size": 2}, r"num_gpus = 1.0 per actor is less than tensor_parallel_size = 2"),
        ({"backend": "tgi"}, r"backend\n  Input should be 'hf' or 'vllm'"),
        ({"backend": "vllm", "max_model_len": 8}, r"max_model_len\n  Input should be greater than or equal to 16"),
        ({"gpu_memory_utilization": 1.5}, r"gpu_memory_utilization\n  Input should be less than or equal to 1"),
    ],
)
def test_bad_backend_settings_are_rejected(fields, match):
    with pytest.raises(ValidationError, match=match):
        ReferenceConfig(engine=fields)


def test_switching_to_vllm_on_cpu_is_rejected_on_assignment():
    config = ReferenceConfig(engine={"device": "cpu"})
    with pytest.raises(ValidationError, match=r"use backend = 'hf' on CPU"):
        config.engine.backend = "vllm"
