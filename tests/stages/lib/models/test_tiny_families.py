"""Tiny builds of real VLM families load through the Hub path with the family's own classes and tokens."""

from __future__ import annotations

import pytest

from stages.lib.errors import ModelError
from stages.lib.models.tiny_families import TINY_FAMILIES, build_tiny_family

# processor class and special tokens each family's checkpoints carry (see the module's sources)
EXPECTED = {
    "qwen2_vl": ("Qwen2VLProcessor", ["<|box_start|>", "<|object_ref_start|>", "<|image_pad|>", "<|im_end|>"]),
    "qwen2_5_vl": ("Qwen2_5_VLProcessor", ["<|box_start|>", "<|vision_start|>", "<|image_pad|>"]),
    "qwen3_vl": ("Qwen3VLProcessor", ["<|vision_start|>", "<|image_pad|>", "<|im_start|>"]),
    "llava": ("LlavaProcessor", ["<image>", "<s>", "</s>"]),
    "llava_next": ("LlavaNextProcessor", ["<image>"]),
    "llava_onevision": ("LlavaOnevisionProcessor", ["<image>", "<video>", "<|im_end|>"]),
    "smolvlm": ("SmolVLMProcessor", ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]),
    "internvl": ("InternVLProcessor", ["<IMG_CONTEXT>", "<img>", "</img>", "<box>", "<ref>"]),
    "mistral3": ("PixtralProcessor", ["[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]"]),
    "gemma3": ("Gemma3Processor", ["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<image_soft_token>"]),
    "paligemma": ("PaliGemmaProcessor", ["<image>", "<loc0000>", "<loc1023>", "<seg127>"]),
}


def test_every_tiny_family_is_listed_with_what_it_must_carry():
    assert set(EXPECTED) == set(TINY_FAMILIES)


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_tiny_family_loads_as_a_hub_model_would(family, tiny_family_dir):
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    path = tiny_family_dir(family)
    processor = AutoProcessor.from_pretrained(path)
    cls, tokens = EXPECTED[family]
    assert type(processor).__name__ == cls
    vocab = processor.tokenizer.get_vocab()
    assert all(t in vocab for t in tokens), [t for t in tokens if t not in vocab]
    assert AutoConfig.from_pretrained(path).model_type == TINY_FAMILIES[family].model_type
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    assert (processor.chat_template is None) == (family == "paligemma")


def test_unknown_family_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelError, match="no tiny build for family 'nope'; available: qwen2_vl"):
        build_tiny_family("nope", tmp_path / "m")
