"""The benchmark commands written for the trained model: the harnesses' documented flags, the model's path."""

from __future__ import annotations

import json

from stages.eval.harness import harness_commands, write_harness_files


def test_llava_folder_gets_lmms_eval_llava_hf_and_vlmevalkit_llava_hf(tiny_model_dir, tmp_path):
    info = harness_commands(tiny_model_dir, name="demo")
    assert info["model_type"] == "llava" and not info["notes"]
    assert info["lmms_eval"].startswith("python -m lmms_eval --model llava_hf --model_args pretrained=")
    assert str(tiny_model_dir.resolve()) in info["lmms_eval"] and "--tasks refcoco_bbox_rec_val" in info["lmms_eval"]
    assert info["vlmevalkit_config"]["model"]["demo"] == {"class": "LLaVA_HF", "model_path": str(tiny_model_dir.resolve())}
    text, config = write_harness_files(tiny_model_dir, tmp_path, name="demo")
    assert json.loads(config.read_text()) == info["vlmevalkit_config"] and "python run.py --config" in text.read_text()


def test_an_unknown_model_type_says_which_class_to_pick(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mystery_vlm"}))
    notes = harness_commands(tmp_path)["notes"]
    assert len(notes) == 2 and all("mystery_vlm" in n for n in notes)
