"""What lmms-eval and VLMEvalKit need to evaluate a saved model on public benchmarks.

The trained model is a plain ``save_pretrained`` folder, so both harnesses load it by path. This
module writes the commands (and VLMEvalKit's config file) next to ``eval.json``; nothing here runs
them (neither harness is a dependency). Sources, read for the flags used:

- lmms-eval (EvolvingLMMs-Lab/lmms-eval): ``python -m lmms_eval --model llava_hf --model_args
  pretrained=<path> --tasks ... --batch_size 1 --log_samples --output_path ./logs/`` is the usage in the
  docstring of ``lmms_eval/models/simple/llava_hf.py`` (class ``LlavaHf``, registered as ``llava_hf``;
  it loads model types llava / llava_next / llava_onevision). Qwen2.5-VL is the model class ``Qwen2_5_VL``
  registered as ``qwen2_5_vl``. Task names are the YAML names under ``lmms_eval/tasks``:
  ``refcoco_bbox_rec_val`` (grounding), ``textvqa_val``, ``ocrbench``.
- VLMEvalKit (open-compass/VLMEvalKit, ``docs/en/ConfigSystem.md``): ``python run.py --config config.json``
  with ``{"model": {NAME: {"class": ..., **kwargs}}, "data": {NAME: {"class": ..., "dataset": ...}}}``;
  the HF-format LLaVA class is ``LLaVA_HF(model_path=...)`` (``vlmeval/vlm/llava/llava_hf.py``), Qwen2-VL /
  Qwen2.5-VL is ``Qwen2VLChat(model_path=...)``; ``MMBench_DEV_EN_V11`` / ``ImageMCQDataset`` is the
  documented example dataset.
Model types without a known entry get the lmms-eval ``llava_hf`` form with a note to pick the model class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

__all__ = ["LMMS_EVAL_MODELS", "VLMEVALKIT_MODELS", "harness_commands", "write_harness_files"]

LMMS_EVAL_MODELS: Final[dict[str, str]] = {
    "llava": "llava_hf",
    "llava_next": "llava_hf",
    "llava_onevision": "llava_hf",
    "qwen2_5_vl": "qwen2_5_vl",
}
VLMEVALKIT_MODELS: Final[dict[str, str]] = {"llava": "LLaVA_HF", "qwen2_vl": "Qwen2VLChat", "qwen2_5_vl": "Qwen2VLChat"}
LMMS_EVAL_TASKS: Final[str] = "refcoco_bbox_rec_val,textvqa_val,ocrbench"


def _model_type(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None


def harness_commands(model_dir: str | Path, name: str = "perpo-model") -> dict[str, Any]:
    """The lmms-eval command and the VLMEvalKit config + command for ``model_dir``, as JSON-able data."""
    model_dir = Path(model_dir).resolve()
    model_type = _model_type(model_dir)
    lmms_model = LMMS_EVAL_MODELS.get(model_type or "", "llava_hf")
    lmms = (
        f"python -m lmms_eval --model {lmms_model} --model_args pretrained={model_dir} "
        f"--tasks {LMMS_EVAL_TASKS} --batch_size 1 --log_samples --output_path ./logs/{name}"
    )
    vlm_class = VLMEVALKIT_MODELS.get(model_type or "", "LLaVA_HF")
    config = {
        "model": {name: {"class": vlm_class, "model_path": str(model_dir)}},
        "data": {"MMBench_DEV_EN_V11": {"class": "ImageMCQDataset", "dataset": "MMBench_DEV_EN_V11"}},
    }
    notes = []
    if model_type not in LMMS_EVAL_MODELS:
        notes.append(f"model_type {model_type!r} has no known lmms-eval entry: choose its --model from lmms_eval/models")
    if model_type not in VLMEVALKIT_MODELS:
        notes.append(f"model_type {model_type!r} has no known VLMEvalKit class: choose one from vlmeval/vlm/__init__.py")
    return {
        "model_dir": str(model_dir),
        "model_type": model_type,
        "lmms_eval": lmms,
        "vlmevalkit_config": config,
        "vlmevalkit": "python run.py --config vlmevalkit_config.json   # run inside a VLMEvalKit checkout",
        "notes": notes,
    }


def write_harness_files(model_dir: str | Path, out_dir: Path, name: str = "perpo-model") -> list[Path]:
    """Write ``benchmarks.md`` (both commands) and ``vlmevalkit_config.json`` into ``out_dir``; return the paths."""
    from stages.lib.files import atomic_write_text

    info = harness_commands(model_dir, name)
    config_path = Path(out_dir) / "vlmevalkit_config.json"
    text_path = Path(out_dir) / "benchmarks.md"
    atomic_write_text(config_path, json.dumps(info["vlmevalkit_config"], indent=2) + "\n")
    lines = [
        "# Evaluating the trained model on public benchmarks",
        "",
        f"Model folder: `{info['model_dir']}` (model_type `{info['model_type']}`), a plain `save_pretrained` folder.",
        "",
        "lmms-eval (`pip install lmms-eval`; grounding on RefCOCO val, TextVQA val, OCRBench):",
        "",
        "```bash",
        info["lmms_eval"],
        "```",
        "",
        "VLMEvalKit (from a checkout of open-compass/VLMEvalKit, with the config written beside this file):",
        "",
        "```bash",
        f"cp {config_path.resolve()} vlmevalkit_config.json",
        info["vlmevalkit"],
        "```",
        *(["", *[f"Note: {n}." for n in info["notes"]]] if info["notes"] else []),
        "",
    ]
    atomic_write_text(text_path, "\n".join(lines))
    return [text_path, config_path]
