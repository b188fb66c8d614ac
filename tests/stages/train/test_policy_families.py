"""LoRA's default targets come from the model family: the language model only, never the vision tower."""

from __future__ import annotations

import pytest

from stages.train.config import TrainConfig
from stages.train.policy import load_policy


@pytest.mark.parametrize("family", ["qwen2_5_vl", "gemma3", "smolvlm"])
def test_family_default_lora_targets_leave_the_vision_tower_without_adapters(family, tiny_family_dir):
    model_dir = tiny_family_dir(family)
    config = TrainConfig(model=str(model_dir), device="cpu", lora=True, lora_r=2, lora_alpha=4)
    model, _ = load_policy(config)
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in model.named_parameters() if ".lora_A" in name}
    assert adapted, f"{family}: the family's default targets matched no module"
    vision = ("visual", "vision_tower", "vision_model", "multi_modal_projector", "connector")
    assert not [n for n in adapted if any(f".{v}." in n for v in vision)]
    assert all(".language_model." in n or ".text_model." in n for n in adapted)


def test_configured_targets_override_the_family_default(tiny_family_dir):
    config = TrainConfig(model=str(tiny_family_dir("gemma3")), device="cpu", lora=True, lora_r=2, lora_alpha=4,
                         lora_target_modules=["q_proj"])
    model, _ = load_policy(config)
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in model.named_parameters() if ".lora_A" in name}
    assert adapted and all(n.endswith("q_proj") for n in adapted)
    assert any(".vision_tower." in n for n in adapted)  # q_proj alone also matches the vision tower's
