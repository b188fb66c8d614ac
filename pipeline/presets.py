"""Each paper's published recipe as a named preset: ``perpo-pipeline run --preset NAME`` or ``[run] preset``.

A preset is a layer of config values between the defaults and the config file: the file and
``--set`` still override any of its keys (``defaults < preset < file < --set``). Every value carries
its source (a script of the authors' repository or a section of the paper); values a paper does not
publish, or that we could not read, are not set, and ``notes`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from data_schemas.tables import Origin
from stages.lib.errors import ConfigError

__all__ = ["PresetName", "Preset", "PRESETS", "preset_values", "presets_markdown"]

_PERPO = "ningerhhh/PerPO run/llava1.5_7b_lora_perpo.sh"
_PERPO_OCR = "ningerhhh/PerPO run/llava_next_siglip_qwen2_lora_perpo.sh"
_PERPO_DATA = "PerPO answers_gen: the N policy samples only (shared/METHODS.md)"
_LLAVA = "LLaVA's LoRA recipe (find_all_linear_names skips the vision tower and projector; the projector trains in full)"
_POVID1 = "YiyangZhou/POVID scripts/run_dpo.sh"
_POVID2 = "YiyangZhou/POVID scripts/run_povid.sh"
_POVID_TRAINER = "YiyangZhou/POVID tool/dpo_trainer_inherent.py (DPOTrainer beta default)"
_MULTI = "arXiv 2410.12138 (multi-sample comparisons)"
_LEANPO = "arXiv 2506.05260 §3 (LeanPO)"
_LEANPO_DATA = ("arXiv 2506.05260 §3 and Wang-Xiaodong1899/LeanPO assets/method.png: winner = the model's answer "
                "given the ground truth as a prior, loser = its answer on a distorted input")
_DPO = "Rafailov et al. 2023 (arXiv 2305.18290) §6; TRL DPOConfig beta default"


class PresetName(StrEnum):
    """The recipes ``--preset`` accepts."""

    PERPO_GROUNDING = "perpo-grounding"
    PERPO_OCR = "perpo-ocr"
    POVID = "povid"
    MDPO = "mdpo"
    MIPO = "mipo"
    LEANPO = "leanpo"
    DPO = "dpo"


@dataclass(frozen=True)
class Preset:
    """A recipe: ``values[section][key] = (value, source)``, a one-line description and what it leaves unset."""

    name: PresetName
    description: str
    values: dict[str, dict[str, tuple[Any, str]]]
    notes: str = ""

    def config(self) -> dict[str, Any]:
        """The values alone, as a config-file dict."""

        def strip(node: Any) -> Any:
            return {k: strip(v) for k, v in node.items()} if isinstance(node, dict) else node[0]

        return strip(self.values)


def _perpo(n: int, source: str, train_extra: dict[str, tuple[Any, str]], micro_batch: int) -> dict:
    return {
        "sample": {"n": (n, f"{source} --best_of_n {n}"), "include_ground_truth": (False, _PERPO_DATA)},
        "perturb": {"enabled": (False, _PERPO_DATA)},
        "rank": {"list_origins": ([Origin.POLICY], _PERPO_DATA), "max_list_len": (n, f"{_PERPO_DATA}: all {n} samples")},
        "train": {
            "loss": ("perpo", source),
            "beta": (0.1, f"{source} --beta 0.1"),
            "gamma": (0.5, f"{source} --perpo_gamma 0.5"),
            "learning_rate": (5e-6, f"{source} --learning_rate 5e-6"),
            "projector_learning_rate": (5e-6, f"{source} --mm_projector_lr 5e-6"),
            "lr_scheduler": ("cosine", f"{source} --lr_scheduler_type cosine"),
            "weight_decay": (0.0, f"{source} --weight_decay 0."),
            "epochs": (1, f"{source} --num_train_epochs 1"),
            "micro_batch_size": (micro_batch, f"{source} --per_device_train_batch_size {micro_batch}"),
            "gradient_accumulation_steps": (1, f"{source} --gradient_accumulation_steps 1"),
            "lora": (True, f"{source} --lora_enable True"),
            "lora_r": (128, f"{source} --lora_r 128"),
            "lora_alpha": (256.0, f"{source} --lora_alpha 256"),
            "lora_exclude_modules": (["vision_tower", "multi_modal_projector"], _LLAVA),
            "lora_modules_to_save": (["multi_modal_projector"], _LLAVA),
            **train_extra,
        },
    }


_POVID_TRAIN: dict[str, tuple[Any, str]] = {
    "loss": ("povid", _POVID2),
    "beta": (0.1, _POVID_TRAINER),
    "povid_two_stage": (True, f"{_POVID1} then {_POVID2} (from POVID_stage_one_merged)"),
    "povid_stage1_epochs": (3, f"{_POVID1} --num_train_epochs 3"),
    "epochs": (1, f"{_POVID2} --num_train_epochs 1"),
    "learning_rate": (1e-7, f"{_POVID2} --learning_rate 1e-7"),
    "projector_learning_rate": (2e-5, f"{_POVID2} --mm_projector_lr 2e-5"),
    "lr_scheduler": ("cosine", f"{_POVID2} --lr_scheduler_type cosine"),
    "warmup_ratio": (0.03, f"{_POVID2} --warmup_ratio 0.03"),
    "weight_decay": (0.0, f"{_POVID2} --weight_decay 0."),
    "micro_batch_size": (1, f"{_POVID2} --per_device_train_batch_size 1"),
    "gradient_accumulation_steps": (1, f"{_POVID2} --gradient_accumulation_steps 1"),
    "lora": (True, f"{_POVID2} --lora_enable True"),
    "lora_r": (128, f"{_POVID2} --lora_r 128"),
    "lora_alpha": (256.0, f"{_POVID2} --lora_alpha 256"),
    "lora_exclude_modules": (["vision_tower", "multi_modal_projector"], _LLAVA),
    "lora_modules_to_save": (["multi_modal_projector"], _LLAVA),
}

PRESETS: Final[dict[PresetName, Preset]] = {
    p.name: p
    for p in (
        Preset(
            PresetName.PERPO_GROUNDING,
            "PerPO on grounding (LLaVA-1.5-7B, RefCOCO): N = 20 policy samples per list, listwise loss.",
            _perpo(20, _PERPO, {"warmup_steps": (0, f"{_PERPO} --warmup_steps 0")}, micro_batch=2),
            "The IoU reward and the sampling temperature follow our defaults (not in the script).",
        ),
        Preset(
            PresetName.PERPO_OCR,
            "PerPO on OCR (LLaVA-NeXT SigLIP Qwen2): N = 5 policy samples per list, listwise loss.",
            _perpo(5, _PERPO_OCR, {
                "warmup_ratio": (0.0, f"{_PERPO_OCR} --warmup_ratio 0"),
                "vision_tower_learning_rate": (5e-7, f"{_PERPO_OCR} --mm_vision_tower_lr 5e-7"),
            }, micro_batch=1),
            "The script sets no unfreeze_mm_vision_tower, so its vision tower lr likely acts on nothing; here it "
            "applies to whatever vision-tower parameters are trainable (none under the LoRA recipe).",
        ),
        Preset(
            PresetName.POVID,
            "POVID: stage 1 DPO vs hallucinations (3 epochs), stage 2 adds the noised-image term (1 epoch).",
            {
                "sample": {"include_ground_truth": (True, "POVID's chosen answer is the ground truth (its preference data)")},
                "perturb": {
                    "distortion": {"enabled": (False, "POVID noises the image during training, not beforehand")},
                },
                "rank": {"list_origins": ([Origin.GROUND_TRUTH, Origin.HALLUCINATION], "POVID pairs: ground truth vs hallucinated")},
                "train": _POVID_TRAIN,
            },
            "POVID's hallucinations come from GPT-4V (prompt not public); ours from the perturb stage.",
        ),
        Preset(
            PresetName.MDPO,
            "Multi-sample DPO: top-k group vs bottom-k group.",
            {"train": {"loss": ("mdpo", _MULTI), "beta": (0.1, f"{_DPO} (the paper's value not readable)")}},
            "The paper's hyper-parameters (k, β, learning rate) could not be read; only the loss is set.",
        ),
        Preset(
            PresetName.MIPO,
            "Multi-sample IPO: the IPO square of the group means (bounded form).",
            {"train": {"loss": ("mipo", _MULTI), "mipo_unbiased": (False, "the bounded default (stages.train.losses.mipo_loss)")}},
            "The paper's hyper-parameters and exact equation could not be read; only the loss is set.",
        ),
        Preset(
            PresetName.LEANPO,
            "LeanPO: reference-free, β × mean per-token log-likelihood, no label smoothing, trained on LeanPO's own "
            "pairs (the answer given the ground truth as a prior vs the answer on a distorted image).",
            {
                "perturb": {
                    "prior_answer": {"enabled": (True, _LEANPO_DATA)},
                    "hallucination": {"enabled": (False, f"{_LEANPO_DATA}: no hallucinated text in the recipe")},
                    "distortion": {"n_answers": (1, "assets/method.png: one losing response per (video, query, answer)")},
                },
                "rank": {
                    "list_origins": ([Origin.PRIOR_ANSWER, Origin.DISTORTED_IMAGE], _LEANPO_DATA),
                    "order_by": ("origin", f"{_LEANPO_DATA}: the origins decide, not a reward"),
                },
                "train": {"loss": ("leanpo", _LEANPO), "leanpo_smoothing": ("none", "the paper's rule was not found")},
                "reference": {"enabled": (False, f"{_LEANPO}: reference-free")},
            },
            "β, the learning rate and the dynamic label smoothing rule were not found; our defaults stay. The prompt "
            "that gives the prior, the distortion A and the self-reflection step were not found either: the prompt is "
            "ours (prompts/prior_answer.txt), the distortion is [perturb.distortion]'s, and no reflection is done.",
        ),
        Preset(
            PresetName.DPO,
            "Plain DPO, best vs worst of each list.",
            {"train": {"loss": ("dpo", _DPO), "beta": (0.1, _DPO), "label_smoothing": (0.0, _DPO)}},
        ),
    )
}


def preset_values(name: str) -> dict[str, Any]:
    """The config-file dict of preset ``name``; :class:`ConfigError` listing the presets when it is unknown."""
    try:
        return PRESETS[PresetName(name)].config()
    except ValueError:
        raise ConfigError(f"[run] preset {name!r}: unknown preset; available: {', '.join(PresetName)}") from None


def _flat(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def presets_markdown() -> str:
    """The presets section of the config reference: each preset's keys, values and sources."""
    import json

    lines = ["### Presets", "", "`perpo-pipeline run --preset NAME` or `[run] preset = \"NAME\"`: each paper's published "
             "settings, under the config file and `--set` (defaults < preset < file < --set).", ""]
    for preset in PRESETS.values():
        lines += [f"#### `{preset.name}`", "", preset.description + (f" {preset.notes}" if preset.notes else ""), "",
                  "| key | value | source |", "|---|---|---|"]
        for key, (value, source) in _flat(preset.values):
            lines.append(f"| `{key}` | `{json.dumps(value)}` | {source} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
