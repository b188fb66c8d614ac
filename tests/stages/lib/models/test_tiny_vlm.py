import hashlib
import time
from pathlib import Path

import pytest

from stages.lib.errors import ModelError
from stages.lib.models.tiny_vlm import IMAGE_SIZE, PATCH_SIZE, TINY_MODEL_MARKER, build_tiny_vlm, is_tiny_model_dir


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_loads_through_auto_classes(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert processor.tokenizer.padding_side == "left"
    assert processor.tokenizer.pad_token_id is not None and processor.tokenizer.eos_token_id is not None
    assert model.generation_config.eos_token_id == processor.tokenizer.eos_token_id


def test_processor_emits_one_image_token_per_patch(tiny_model_dir):
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}],
        add_generation_prompt=True,
    )
    enc = processor(images=[Image.new("RGB", (90, 30))], text=[text], return_tensors="pt")
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((enc["input_ids"] == image_token_id).sum()) == (IMAGE_SIZE // PATCH_SIZE) ** 2
    assert tuple(enc["pixel_values"].shape) == (1, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_same_seed_same_files_other_seed_other_weights(tmp_path):
    a = build_tiny_vlm(tmp_path / "a", seed=3)
    b = build_tiny_vlm(tmp_path / "b", seed=3)
    c = build_tiny_vlm(tmp_path / "c", seed=4)
    assert _digests(a) == _digests(b)
    assert _digests(a)["model.safetensors"] != _digests(c)["model.safetensors"]
    assert _digests(a)["tokenizer.json"] == _digests(c)["tokenizer.json"]


def test_build_is_fast_and_leaves_no_staging_folder(tmp_path, tiny_model_dir):
    started = time.perf_counter()
    out = build_tiny_vlm(tmp_path / "m")
    assert time.perf_counter() - started < 2.0
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    assert (out / TINY_MODEL_MARKER).is_file()


def test_rebuild_replaces_a_tiny_model_folder(tmp_path):
    out = build_tiny_vlm(tmp_path / "m", seed=0)
    (out / "stale.txt").write_text("x")
    build_tiny_vlm(out, seed=1)
    assert not (out / "stale.txt").exists()
    assert is_tiny_model_dir(out)


def test_refuses_to_overwrite_another_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="not empty and is not a tiny model"):
        build_tiny_vlm(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_is_tiny_model_dir(tmp_path, tiny_model_dir):
    assert is_tiny_model_dir(tiny_model_dir)
    assert not is_tiny_model_dir(tmp_path)
    assert not is_tiny_model_dir(tmp_path / "missing")
