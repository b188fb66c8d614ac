"""``[train]``: the loss, the optimisation schedule, LoRA, checkpoints and hardware of the train stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stages.base import StageConfig
from stages.train.loss_registry import LOSSES, LossName

__all__ = ["TrainConfig", "RESUME_NEUTRAL_FIELDS"]

# Fields a resumed run may change without invalidating its checkpoints (they set how far and how
# often, not what each step does).
RESUME_NEUTRAL_FIELDS = frozenset(
    {
        "enabled", "max_steps", "epochs", "save_every", "keep_checkpoints", "log_every",
        "forward_batch_size", "share_prompt", "gradient_checkpointing", "num_gpus", "num_cpus", "device",
    }
)


class TrainConfig(StageConfig):
    """``[train]``: preference training on the listwise rows (with reference log-probs) and their task images."""

    # model
    model: str = Field(
        "", description="Model to train: a local folder or Hub id. Empty means the sample stage's model (the policy)."
    )
    # loss
    loss: LossName = Field(
        LossName.PERPO,
        description="Training loss: " + "; ".join(f"{s.name}: {s.compares}" for s in LOSSES.values())
        + ". Sources and deviations: README's loss table.",
    )
    beta: float | None = Field(
        None,
        gt=0,
        description="Inverse temperature β. Unset: "
        + ", ".join(f"{s.name} {s.default_beta}" for s in LOSSES.values())
        + " (leanpo's reward is a mean per-token log-likelihood, so it needs a larger β).",
    )
    gamma: float = Field(0.5, ge=0, description="PerPO: exponent γ of the reward-gap weight |ψ_i − ψ_j|^γ.")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="dpo/mdpo: cDPO label smoothing ε.")
    group_size: int = Field(2, ge=1, description="mdpo/mipo: k responses per group (capped at half the list).")
    leanpo_smoothing: Literal["none", "ours_reward_gap"] = Field(
        "none",
        description="leanpo: label smoothing. 'none' (default: the paper's dynamic rule was not found); "
        "'ours_reward_gap': our rule ε = leanpo_max_smoothing × (1 − reward gap) per pair, not the paper's.",
    )
    leanpo_max_smoothing: float = Field(
        0.1, ge=0, lt=0.5, description="leanpo with 'ours_reward_gap': the ε given to pairs with equal rewards."
    )
    mipo_unbiased: bool = Field(
        False,
        description="mipo: subtract each group mean's sample variance (our variance-corrected form, not the "
        "paper's; unbounded below). Default: the plain IPO square of the group means (bounded below by 0).",
    )
    povid_stage: Literal[1, 2] = Field(
        2,
        description="povid: 2 = POVID's combined loss (0.5 · DPO vs hallucinated + 0.5 · DPO vs the image term); "
        "1 = POVID's first stage, plain DPO of the chosen answer vs its hallucinations.",
    )
    povid_two_stage: bool = Field(
        False,
        description="povid: run POVID's two-stage schedule in this stage: povid_stage1_epochs of stage 1, merge, then "
        "`epochs` of stage 2 from the merged stage-1 model, which is also stage 2's reference (its log-probs and "
        "image terms are computed in-process).",
    )
    povid_stage1_epochs: int = Field(3, ge=1, description="povid_two_stage: epochs of stage 1 (POVID: 3).")
    # optimisation
    learning_rate: float = Field(5e-6, gt=0, description="Peak learning rate (PerPO's published value: 5e-6).")
    projector_learning_rate: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate of the trainable parameters under `projector_modules` (LLaVA's "
        "mm_projector_lr; PerPO 5e-6, POVID 2e-5). Unset: learning_rate.",
    )
    vision_tower_learning_rate: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate of the trainable parameters under `vision_tower_modules` (LLaVA-NeXT's "
        "mm_vision_tower_lr; PerPO's OCR run 5e-7). Unset: learning_rate.",
    )
    projector_modules: list[str] = Field(
        default_factory=lambda: ["multi_modal_projector", "mm_projector"],
        description="Parameter-name parts that mark the vision-language projector (for projector_learning_rate).",
    )
    vision_tower_modules: list[str] = Field(
        default_factory=lambda: ["vision_tower", "vision_model", "visual"],
        description="Parameter-name parts that mark the vision tower (for vision_tower_learning_rate).",
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    lr_scheduler: Literal["constant", "linear", "cosine"] = Field("linear", description="Decay after warm-up.")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warm-up.")
    warmup_ratio: float = Field(
        0.0, ge=0, lt=1, description="Warm-up as a fraction of the run's optimizer steps, rounded up (POVID: 0.03); "
        "set it or warmup_steps, not both."
    )
    max_grad_norm: float = Field(1.0, ge=0, description="Clip the gradient norm to this (0 disables clipping).")
    micro_batch_size: int = Field(1, ge=1, description="Lists per forward/backward pass (all their responses at once).")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    forward_batch_size: int = Field(
        64, ge=1, description="Largest number of responses in one forward pass (a micro-batch is split above it)."
    )
    share_prompt: bool = Field(
        True,
        description="Run a list's prompt and image once and score its responses on the KV cache "
        "(llava-family models; others always score full sequences). Same numbers, less compute.",
    )
    epochs: int = Field(1, ge=1, description="Passes over the lists (ignored when max_steps > 0).")
    max_steps: int = Field(0, ge=0, description="Optimizer steps to run; 0 means `epochs` passes.")
    seed: int = Field(0, description="Seed of the data order and of LoRA initialisation.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory on large models.")
    # LoRA
    lora: bool = Field(False, description="Train LoRA adapters (peft) instead of every weight.")
    lora_r: int = Field(128, ge=1, description="LoRA rank (PerPO / POVID: 128).")
    lora_alpha: float = Field(256.0, gt=0, description="LoRA alpha (PerPO / POVID: 256).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    lora_target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names (or suffixes) that get adapters.",
    )
    lora_exclude_modules: list[str] = Field(
        default_factory=list,
        description="Modules whose whole subtree gets no adapter even where it matches lora_target_modules "
        "(LLaVA's recipe keeps adapters off the vision tower and projector: ['vision_tower', 'multi_modal_projector']).",
    )
    lora_modules_to_save: list[str] = Field(
        default_factory=list,
        description="Modules trained in full next to the adapters (peft modules_to_save; LLaVA trains its projector "
        "so: ['multi_modal_projector']).",
    )
    lora_merge: bool = Field(True, description="Merge the adapters into the saved model (a plain from_pretrained folder).")
    # checkpoints and logs
    save_every: int = Field(50, ge=1, description="Write a resumable checkpoint every this many optimizer steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept on disk (the newest ones).")
    log_every: int = Field(1, ge=1, description="Append a line to train_log.jsonl every this many optimizer steps.")
    # hardware
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' uses a CUDA GPU when one is visible.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="'auto': on GPU, float32 weights under bfloat16 autocast (bfloat16 frozen base weights with "
        "LoRA); float32 on CPU. 'bfloat16': bfloat16 weights and autocast (least memory). 'float32': no autocast.",
    )
    num_gpus: float = Field(0.0, ge=0, description="GPUs Ray reserves for the training task (0 on CPU).")
    num_cpus: float = Field(1.0, gt=0, description="CPUs Ray reserves for the training task.")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.lora and not self.lora_target_modules:
            raise ValueError("lora = true needs lora_target_modules (e.g. ['q_proj', 'v_proj']); got an empty list")
        if self.povid_two_stage and self.loss is not LossName.POVID:
            raise ValueError(f"povid_two_stage = true needs loss = 'povid', got loss = {self.loss.value!r}")
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError(
                f"warmup_steps = {self.warmup_steps} and warmup_ratio = {self.warmup_ratio} are both set; keep one"
            )
        if self.warmup_steps and self.max_steps and self.warmup_steps > self.max_steps:
            raise ValueError(
                f"warmup_steps = {self.warmup_steps} exceeds max_steps = {self.max_steps}; lower warmup_steps"
            )
        return self
