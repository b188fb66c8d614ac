"""The model-family registry: model_type lookup, resolution from a model folder or Hub id, LoRA targets."""

from __future__ import annotations

import json
import re

import pytest

from stages.lib import families
from stages.lib.boxes import FORMATS, BoxFormat
from stages.lib.errors import ConfigError
from stages.lib.families import (
    FAMILIES,
    GENERIC,
    checked_family,
    family_for_model_type,
    get_family,
    model_type_of,
    profile_for,
    resolve_family,
)


def test_profiles_are_consistent():
    model_types = [mt for p in FAMILIES.values() for mt in p.model_types]
    assert len(model_types) == len(set(model_types)), "a model_type maps to one family"
    for p in FAMILIES.values():
        assert p.box_format in FORMATS and p.source
        assert FORMATS[p.candidate_format].write is not None, f"{p.name}: candidates must be writable"
        if p.keep_tokens:
            re.compile(p.keep_tokens)
        re.compile(p.lora_target_modules)


@pytest.mark.parametrize(
    ("model_type", "family", "box_format"),
    [
        ("qwen2_vl", "qwen2_vl", BoxFormat.QWEN2_VL),
        ("qwen2_5_vl", "qwen2_5_vl", BoxFormat.QWEN2_5_VL),
        ("qwen3_vl_moe", "qwen3_vl", BoxFormat.QWEN3_VL),
        ("internvl_chat", "internvl", BoxFormat.INTERNVL),
        ("llava", "llava", BoxFormat.LLAVA),
        ("kosmos-2", "kosmos2", BoxFormat.KOSMOS2),
        ("paligemma", "paligemma", BoxFormat.PALIGEMMA),
        ("deepseek_vl_v2", "deepseek_vl2", BoxFormat.DEEPSEEK_VL2),
        ("gemma3", "gemma3", BoxFormat.AUTO),
        ("some_new_vlm", "generic", BoxFormat.AUTO),
        (None, "generic", BoxFormat.AUTO),
    ],
)
def test_family_for_model_type(model_type, family, box_format):
    p = family_for_model_type(model_type)
    assert p.name == family and p.box_format == box_format


def test_candidates_speak_the_policys_format_except_for_points():
    assert FAMILIES["qwen2_vl"].candidate_format == BoxFormat.QWEN2_VL
    assert FAMILIES["molmo"].candidate_format == BoxFormat.PIXEL  # Molmo points: our boxes stay pixels
    assert GENERIC.candidate_format == BoxFormat.PIXEL and GENERIC.box_format == BoxFormat.AUTO


def test_keep_tokens_match_the_families_box_tags():
    assert re.fullmatch(FAMILIES["qwen2_vl"].keep_tokens, "<|box_start|>")
    assert re.fullmatch(FAMILIES["internvl"].keep_tokens, "</box>")
    assert re.fullmatch(FAMILIES["florence2"].keep_tokens, "<loc_999>")
    assert re.fullmatch(FAMILIES["deepseek_vl2"].keep_tokens, "<|/det|>")
    assert not re.fullmatch(FAMILIES["qwen2_vl"].keep_tokens, "<|im_end|>")


def test_model_type_of_a_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    assert model_type_of(str(tmp_path)) == "qwen2_5_vl"
    assert resolve_family(str(tmp_path)) == "qwen2_5_vl"
    assert model_type_of(str(tmp_path / "missing")) is None  # the model stage reports a missing model
    empty = tmp_path / "empty"
    empty.mkdir()
    assert model_type_of(str(empty)) is None and resolve_family(str(empty)) == "generic"


def test_model_type_of_a_hub_id(monkeypatch, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "internvl"}))
    calls = []

    def fake_download(repo_id, filename):
        calls.append((repo_id, filename))
        return str(config)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    assert model_type_of("OpenGVLab/InternVL3-1B-hf") == "internvl"
    assert calls == [("OpenGVLab/InternVL3-1B-hf", "config.json")]


def test_unreadable_hub_config_warns_and_falls_back_to_generic(monkeypatch, caplog):
    def fail(repo_id, filename):
        raise OSError("offline\nsecond line")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fail)
    with caplog.at_level("WARNING", logger="stages.lib.families"):
        assert model_type_of("org/model") is None and resolve_family("org/model") == "generic"
    [message] = {r.getMessage() for r in caplog.records}
    assert "cannot read the model_type of 'org/model'" in message and "offline" in message and "second line" not in message
    assert "set [sample] family" in message


def test_explicit_family_wins_and_is_checked(tmp_path):
    assert resolve_family("anything", "paligemma") == "paligemma"
    with pytest.raises(ConfigError, match="unknown model family 'qwen'; available: generic, qwen2_vl"):
        get_family("qwen")
    with pytest.raises(ValueError, match="unknown model family 'qwen'"):
        checked_family("qwen")
    assert checked_family("") == ""
    assert profile_for("") is GENERIC and profile_for("llava").name == "llava"


def test_tiny_model_is_a_llava(tiny_model_dir):
    assert resolve_family(str(tiny_model_dir)) == "llava"


@pytest.mark.parametrize(
    ("family", "adapted", "not_adapted"),
    [
        ("llava", "model.language_model.layers.0.self_attn.q_proj", "model.vision_tower.encoder.layers.0.self_attn.q_proj"),
        ("qwen2_vl", "model.language_model.layers.3.mlp.down_proj", "model.visual.blocks.0.attn.qkv"),
        ("gemma3", "model.language_model.layers.1.self_attn.o_proj", "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"),
        ("smolvlm", "model.text_model.layers.0.self_attn.v_proj", "model.vision_model.encoder.layers.0.self_attn.v_proj"),
        ("generic", "model.text_model.layers.0.mlp.up_proj", "model.vision_tower.encoder.layers.0.mlp.fc1"),
    ],
)
def test_lora_targets_are_the_language_model_only(family, adapted, not_adapted):
    # peft full-matches a string target_modules against every module name
    pattern = FAMILIES[family].lora_target_modules
    assert re.fullmatch(pattern, adapted) and not re.fullmatch(pattern, not_adapted)


def test_lora_targets_on_the_tiny_model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    names = [n for n, _ in AutoModelForImageTextToText.from_pretrained(tiny_model_dir).named_modules()]
    adapted = [n for n in names if re.fullmatch(FAMILIES["llava"].lora_target_modules, n)]
    assert adapted and all(".language_model." in n for n in adapted)
    assert any(".vision_tower." in n and n.endswith("q_proj") for n in names)  # exists, and is left alone


def test_module_doc_names_every_profile_field():
    for name in ("box_format", "candidate_format", "keep_tokens", "chat", "lora_target_modules"):
        assert f"``{name}``" in families.__doc__
