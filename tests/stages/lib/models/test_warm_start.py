"""The warm-started demo policy: built from a synthetic split disjoint from the demo corpus, cached by its settings."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from stages.ingest.demo_corpus import demo_item
from stages.lib.errors import ModelError
from stages.lib.models.tiny_vlm import DEMO_POLICY_SPEC, TINY_MODEL_MARKER, TinySpec, build_tiny_vlm
from stages.lib.models.warm_start import (
    WARM_START_MARKER,
    WarmStartSettings,
    _examples,
    _tokenize,
    build_warm_tiny_vlm,
    ensure_warm_tiny_vlm,
    is_warm_start_dir,
    sft_train,
)

TINY = WarmStartSettings(n_examples=8, steps=2, batch_size=4, warmup_steps=1)


def _signature(item):
    return (item.task.prompt, item.task.answer, item.size, item.background, item.shapes, item.text, item.text_xy)


def test_the_sft_split_shares_no_task_with_the_demo_corpus():
    settings = WarmStartSettings()
    demo = {_signature(demo_item(0, i)) for i in range(500)}
    assert not any(_signature(demo_item(settings.corpus_seed, i)) in demo for i in range(settings.n_examples))


def test_demo_policy_tokenizer_writes_each_coordinate_as_one_token(tmp_path):
    from transformers import AutoProcessor

    tokenizer = AutoProcessor.from_pretrained(build_tiny_vlm(tmp_path / "m", spec=DEMO_POLICY_SPEC)).tokenizer
    pieces = [tokenizer.decode([i]) for i in tokenizer("[10, 66, 127, 95]", add_special_tokens=False)["input_ids"]]
    assert pieces == ["[", "10", ",", " 66", ",", " 127", ",", " 95", "]"]
    assert TinySpec() != DEMO_POLICY_SPEC  # the test model every other test uses is unchanged


def test_fine_tuning_lowers_the_answer_loss(tmp_path):
    from stages.vlm.engine_config import EngineConfig
    from stages.vlm.load import load_vlm

    model, processor = load_vlm(EngineConfig(model=str(build_tiny_vlm(tmp_path / "m", spec=DEMO_POLICY_SPEC)), device="cpu"), "test")
    settings = replace(TINY, steps=25, learning_rate=3e-3)
    losses = sft_train(model, _tokenize(processor, _examples(settings)), settings)
    assert len(losses) == 25 and sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_build_then_reuse_the_cached_folder(tmp_path):
    from stages.vlm.engine_config import EngineConfig
    from stages.vlm.load import load_vlm

    out = tmp_path / "warm"
    path, built = ensure_warm_tiny_vlm(out, TINY)
    assert built and is_warm_start_dir(path, TINY) and (path / TINY_MODEL_MARKER).is_file()
    assert json.loads((path / WARM_START_MARKER).read_text())["steps"] == 2
    model, processor = load_vlm(EngineConfig(model=str(path), device="cpu"), "test")  # a plain from_pretrained folder
    assert model.config.model_type == "llava"
    mtime = (path / "config.json").stat().st_mtime_ns
    assert ensure_warm_tiny_vlm(out, TINY) == (path, False) and (path / "config.json").stat().st_mtime_ns == mtime
    other = replace(TINY, steps=3)
    assert not is_warm_start_dir(path, other) and ensure_warm_tiny_vlm(out, other)[1]  # other settings: rebuilt


def test_refuses_to_overwrite_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="not empty and is not a tiny model"):
        build_warm_tiny_vlm(tmp_path, TINY)
