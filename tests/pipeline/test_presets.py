"""Presets: each paper's published settings (checked against a table transcribed from the sources), layered
under the config file and --set."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from pipeline.presets import PRESETS, PresetName, presets_markdown
from stages.lib.errors import ConfigError

# (preset, "section.key", published value, where it is published) — read from the authors' scripts by hand.
PUBLISHED = [
    ("perpo-grounding", "sample.n", 20, "ningerhhh/PerPO run/llava1.5_7b_lora_perpo.sh: --best_of_n 20"),
    ("perpo-grounding", "train.beta", 0.1, "same script: --beta 0.1"),
    ("perpo-grounding", "train.gamma", 0.5, "same script: --perpo_gamma 0.5"),
    ("perpo-grounding", "train.learning_rate", 5e-6, "same script: --learning_rate 5e-6"),
    ("perpo-grounding", "train.projector_learning_rate", 5e-6, "same script: --mm_projector_lr 5e-6"),
    ("perpo-grounding", "train.lr_scheduler", "cosine", "same script: --lr_scheduler_type cosine"),
    ("perpo-grounding", "train.warmup_steps", 0, "same script: --warmup_steps 0"),
    ("perpo-grounding", "train.epochs", 1, "same script: --num_train_epochs 1"),
    ("perpo-grounding", "train.micro_batch_size", 2, "same script: --per_device_train_batch_size 2"),
    ("perpo-grounding", "train.lora_r", 128, "same script: --lora_r 128"),
    ("perpo-grounding", "train.lora_alpha", 256, "same script: --lora_alpha 256"),
    ("perpo-grounding", "rank.list_origins", ("policy",), "PerPO answers_gen: policy samples only"),
    ("perpo-ocr", "sample.n", 5, "ningerhhh/PerPO run/llava_next_siglip_qwen2_lora_perpo.sh: --best_of_n 5"),
    ("perpo-ocr", "train.vision_tower_learning_rate", 5e-7, "same script: --mm_vision_tower_lr 5e-7"),
    ("perpo-ocr", "train.projector_learning_rate", 5e-6, "same script: --mm_projector_lr 5e-6"),
    ("perpo-ocr", "train.learning_rate", 5e-6, "same script: --learning_rate 5e-6"),
    ("perpo-ocr", "train.warmup_ratio", 0.0, "same script: --warmup_ratio 0"),
    ("perpo-ocr", "train.micro_batch_size", 1, "same script: --per_device_train_batch_size 1"),
    ("perpo-ocr", "train.lora_r", 128, "same script: --lora_r 128"),
    ("povid", "train.loss", "povid", "YiyangZhou/POVID tool/dpo_trainer_inherent.py"),
    ("povid", "train.beta", 0.1, "POVID's DPOTrainer: beta: float = 0.1 (the scripts do not override it)"),
    ("povid", "train.learning_rate", 1e-7, "YiyangZhou/POVID scripts/run_dpo.sh and run_povid.sh: --learning_rate 1e-7"),
    ("povid", "train.projector_learning_rate", 2e-5, "both scripts: --mm_projector_lr 2e-5"),
    ("povid", "train.warmup_ratio", 0.03, "both scripts: --warmup_ratio 0.03"),
    ("povid", "train.lr_scheduler", "cosine", "both scripts: --lr_scheduler_type cosine"),
    ("povid", "train.povid_stage1_epochs", 3, "scripts/run_dpo.sh: --num_train_epochs 3"),
    ("povid", "train.epochs", 1, "scripts/run_povid.sh: --num_train_epochs 1"),
    ("povid", "train.povid_two_stage", True, "run_povid.sh starts from POVID_stage_one_merged"),
    ("povid", "train.lora_r", 128, "both scripts: --lora_r 128"),
    ("povid", "train.lora_alpha", 256, "both scripts: --lora_alpha 256"),
    ("povid", "train.micro_batch_size", 1, "both scripts: --per_device_train_batch_size 1"),
    ("povid", "perturb.distortion.enabled", False, "POVID noises the image during training"),
    ("mdpo", "train.loss", "mdpo", "arXiv 2410.12138"),
    ("mipo", "train.loss", "mipo", "arXiv 2410.12138"),
    ("mipo", "train.mipo_unbiased", False, "bounded default: the paper's estimator was not readable"),
    ("leanpo", "train.loss", "leanpo", "arXiv 2506.05260"),
    ("leanpo", "train.leanpo_smoothing", "none", "the paper's smoothing rule was not found"),
    ("leanpo", "reference.enabled", False, "LeanPO is reference-free"),
    ("leanpo", "perturb.prior_answer.enabled", True, "arXiv 2506.05260 §3: y_w from the model given the ground truth as a prior"),
    ("leanpo", "rank.list_origins", ("prior_answer", "distorted_image"), "same: y_l is the answer on a distorted input"),
    ("leanpo", "rank.order_by", "origin", "same: the pair is set by how each answer was made"),
    ("leanpo", "perturb.distortion.n_answers", 1, "Wang-Xiaodong1899/LeanPO assets/method.png: one losing response"),
    ("leanpo", "perturb.hallucination.enabled", False, "no hallucinated text in LeanPO's recipe"),
    ("dpo", "train.loss", "dpo", "Rafailov et al. 2023"),
    ("dpo", "train.beta", 0.1, "Rafailov et al. 2023; TRL DPOConfig default"),
]


def _get(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize(("preset", "key", "value", "source"), PUBLISHED, ids=[f"{p}:{k}" for p, k, *_ in PUBLISHED])
def test_each_preset_holds_the_published_value(preset, key, value, source):
    cfg = load_config(None, [f'run.preset="{preset}"'])
    got = _get(cfg, key)
    assert (got == pytest.approx(value) if isinstance(value, float) else got == value), f"{key}: {got!r}, published {value!r} ({source})"


def test_every_preset_is_checked_and_every_value_names_its_source():
    assert {p for p, *_ in PUBLISHED} == set(PresetName)
    for preset in PRESETS.values():
        assert preset.description
        flat = [v for section in preset.values.values() for v in section.values()]
        leaves = [leaf for v in flat for leaf in (v.values() if isinstance(v, dict) else [v])]
        assert all(isinstance(source, str) and source for _, source in leaves)


def test_a_perpo_list_holds_all_n_samples():
    for name in ("perpo-grounding", "perpo-ocr"):
        cfg = load_config(None, [f'run.preset="{name}"'])
        assert cfg.rank.max_list_len >= cfg.sample.n and cfg.rank.list_origins == ("policy",)
        assert not cfg.sample.include_ground_truth


def test_the_file_and_set_override_the_preset(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text('[run]\npreset = "povid"\n\n[train]\nlearning_rate = 3e-7\nepochs = 2\n')
    cfg = load_config(path)
    assert cfg.train.loss == "povid" and cfg.train.learning_rate == 3e-7 and cfg.train.epochs == 2  # file > preset
    assert cfg.train.projector_learning_rate == 2e-5  # the preset's, not overridden
    cfg = load_config(path, ["train.epochs=5", 'run.preset="dpo"'])  # --set > file, and --set picks the preset
    assert cfg.train.epochs == 5 and cfg.train.loss == "dpo" and cfg.train.learning_rate == 3e-7
    assert load_config(None).run.preset is None and load_config(None).train.loss == "perpo"


def test_an_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown preset; available: perpo-grounding, perpo-ocr, povid"):
        load_config(None, ['run.preset="perpo"'])


def test_config_reference_documents_every_preset():
    from pipeline.config_docs import config_reference_markdown

    text = config_reference_markdown()
    assert presets_markdown() in text
    assert all(f"#### `{name}`" in text for name in PresetName)


def test_run_preset_on_the_command_line_is_checked(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--preset", "nope", "--run-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "[run] preset 'nope': unknown preset; available: perpo-grounding" in proc.stderr


@pytest.mark.slow
def test_the_leanpo_preset_trains_prior_answers_against_distorted_answers(tiny_model_dir, tmp_path):
    """The whole recipe on the tiny model: perturb adds one prior answer per task, rank lists hold only prior and
    distorted-image answers with the prior answer first, every pair is prior_answer over distorted_image, and the
    leanpo loss trains on them (no reference stage)."""
    from pipeline.runner import run_pipeline
    from pipeline.store import RunStore

    settings = ['run.preset="leanpo"', "run.progress=false", "ingest.n_tasks=6", "ingest.shard_size=6",
                f'sample.engine.model="{tiny_model_dir}"', "sample.n=1", "sample.max_tokens=6", "perturb.max_tokens=6",
                "train.max_steps=1", "eval.enabled=false"]
    cfg = load_config(None, settings)
    ran = {s.stage: s for s in run_pipeline(cfg, tmp_path, use_ray=False)}
    assert "reference" not in ran and ran["train"].shards_run == 1
    store = RunStore(tmp_path)
    candidates = store.read_table("perturb", "candidates", "candidates", columns=["origin"])["origin"].to_pylist()
    assert candidates.count("prior_answer") == ran["ingest"].rows["tasks"]  # one prior answer per task with an answer
    listwise = store.read_table("rank", "listwise", "listwise").to_pylist()
    assert listwise and all(r["origins"][0] == "prior_answer" and set(r["origins"]) == {"prior_answer", "distorted_image"}
                            for r in listwise)
    pairs = store.read_table("rank", "pairs", "listwise").to_pylist()
    assert pairs and {(p["chosen_origin"], p["rejected_origin"]) for p in pairs} == {("prior_answer", "distorted_image")}
    assert store.read_manifest("train").shards[0].metrics["steps"] == 1
