"""The training loop, nanoGPT-style: one commented block per phase, helpers of about 20 lines each.

:func:`train_model` reads top to bottom: prepare (the lists the loss can use), build (policy, LoRA,
optimizer, schedule), resume (newest checkpoint), then per step forward/backward, optimizer step,
log and checkpoint, and finally save the model.

Why a plain loop and not a ``transformers.Trainer`` subclass: a step here is "score every response
of a few lists in one batched forward, pick pairs/groups by reward, back-propagate one loss", which
fits Trainer's dataset/collator/``compute_loss`` plumbing poorly (it drops the non-tensor columns,
and its resume replays the data loader instead of holding the counters we need). Its checkpoint
holds exactly the model's trainable weights, the optimizer, the scheduler, the counters, the RNG
state and the config, so a resumed run is bit-for-bit the uninterrupted one on CPU.

Several processes (``perpo-pipeline train --nproc K``, which runs the train shard under torchrun:
:class:`pipeline.torchrun_executor.TorchrunExecutor`) train one model with DistributedDataParallel:
each optimizer step's global batch is ``micro_batch_size × gradient_accumulation_steps × world_size``
lists, every rank takes a disjoint share of each global micro-batch (:func:`rank_micro_batch`), DDP
averages the gradients (each rank's loss is a mean over its lists, so the average equals the
single-process loss over the whole global micro-batch), the logged metrics cover all ranks (mean
loss, summed counts), and rank 0 alone writes checkpoints, the log and the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from stages.lib.errors import ConfigError
from stages.lib.models.folder import save_model_folder
from stages.train.checkpoint import is_checkpoint, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint
from stages.train.config import RESUME_NEUTRAL_FIELDS, TrainConfig
from stages.train.data import ListExample, load_lists
from stages.train.distributed import SINGLE, DistInfo, all_gather_objects, all_reduce_sum, barrier, rank_split
from stages.train.loss_registry import LOSSES, LossName
from stages.train.objective import ListBatch, LossParams, implicit_rewards, list_loss, pair_metrics, povid_chosen, usable_list

__all__ = [
    "train_model", "total_steps", "micro_batch_indices", "rank_micro_batch", "loss_params", "precision", "param_groups",
    "warmup_steps",
]


def loss_params(config: TrainConfig) -> LossParams:
    """The loss hyper-parameters of a train config."""
    return LossParams(
        beta=config.beta,
        gamma=config.gamma,
        label_smoothing=config.label_smoothing,
        group_size=config.group_size,
        max_smoothing=config.leanpo_max_smoothing,
        leanpo_smoothing=config.leanpo_smoothing,
        mipo_unbiased=config.mipo_unbiased,
        povid_stage=config.povid_stage,
    )


def _epoch_length(n_lists: int, world_size: int) -> int:
    """Lists per epoch: ``n_lists`` rounded up to a multiple of ``world_size`` (the order wraps around to fill it)."""
    return math.ceil(n_lists / world_size) * world_size


def _per_epoch(n_lists: int, config: TrainConfig, world_size: int = 1) -> int:
    return math.ceil(_epoch_length(n_lists, world_size) / (config.micro_batch_size * world_size))


def total_steps(n_lists: int, config: TrainConfig, world_size: int = 1) -> int:
    """Optimizer steps of the run: ``max_steps``, else enough for ``epochs`` passes over ``world_size`` processes."""
    if config.max_steps:
        return config.max_steps
    return math.ceil(config.epochs * _per_epoch(n_lists, config, world_size) / config.gradient_accumulation_steps)


def micro_batch_indices(g: int, n_lists: int, config: TrainConfig, world_size: int = 1) -> list[int]:
    """The list indices of global micro-batch ``g`` (``micro_batch_size × world_size`` lists, fewer at an epoch's end).

    Epoch e is a fixed permutation seeded by (seed, e), the same on every rank. With several
    processes it wraps around to a multiple of ``world_size`` (like ``DistributedSampler``), so every
    global micro-batch splits evenly; single-process it is the plain permutation.
    """
    import torch

    epoch, j = divmod(g, _per_epoch(n_lists, config, world_size))
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    perm = torch.randperm(n_lists, generator=gen).tolist()
    order = [perm[i % n_lists] for i in range(_epoch_length(n_lists, world_size))]
    width = config.micro_batch_size * world_size
    return order[j * width : (j + 1) * width]


def rank_micro_batch(g: int, n_lists: int, config: TrainConfig, info: DistInfo = SINGLE) -> list[int]:
    """The list indices rank ``info.rank`` trains on in global micro-batch ``g`` (disjoint across ranks)."""
    return rank_split(micro_batch_indices(g, n_lists, config, info.world_size), info.rank, info.world_size)


def _step_micro_batches(step: int, n_lists: int, config: TrainConfig, info: DistInfo = SINGLE) -> list[list[int]]:
    """This rank's micro-batches of optimizer step ``step`` (the same count on every rank)."""
    accum = config.gradient_accumulation_steps
    limit = math.inf if config.max_steps else config.epochs * _per_epoch(n_lists, config, info.world_size)
    return [rank_micro_batch(g, n_lists, config, info) for g in range(step * accum, (step + 1) * accum) if g < limit]


def _list_batch(lists: list[ListExample], sums: Any, counts: Any, loss: LossName, image_terms: Any = None) -> ListBatch:
    """Pad the flat per-response log-probs of ``lists`` into ``[B, N]`` tensors (``image_terms``: one per list, povid)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    device = sums.device
    sizes = [len(ex.responses) for ex in lists]
    width = max(sizes)

    def pad(rows: list[list[float]], dtype=torch.float32) -> torch.Tensor:
        return torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=dtype, device=device)

    keep_null = loss in (LossName.POVID, LossName.POVID_OFFLINE)  # preference from origins, rewards may be null
    mask = [[r is not None or keep_null for r in ex.rewards] + [False] * (width - len(ex.rewards)) for ex in lists]
    policy_image = ref_image = None
    if image_terms is not None:  # POVID's image term, placed in the chosen answer's column
        chosen = [povid_chosen(ex.rewards, ex.origins) for ex in lists]
        column = torch.tensor([[j == c for j in range(width)] for c in chosen], dtype=torch.bool, device=device)
        policy_image = torch.where(column, image_terms.unsqueeze(1), torch.zeros_like(column, dtype=image_terms.dtype))
        ref_image = pad([ex.ref_povid_logps or [0.0] * len(ex.responses) for ex in lists])
    return ListBatch(
        policy_image_term=policy_image,
        ref_image_term=ref_image,
        policy_logps=pad_sequence(list(torch.split(sums, sizes)), batch_first=True),
        ref_logps=pad([ex.ref_logps for ex in lists]) if LOSSES[loss].needs_reference else None,  # type: ignore[misc]
        n_tokens=pad_sequence(list(torch.split(counts.float(), sizes)), batch_first=True),
        rewards=pad([[0.0 if r is None else r for r in ex.rewards] for ex in lists]),
        mask=torch.tensor(mask, dtype=torch.bool, device=device),
        origins=[ex.origins + [""] * (width - len(ex.origins)) for ex in lists],
    )


def _micro_step(
    scorer: Any, lists: list[ListExample], config: TrainConfig, scale: float, autocast: bool = False
) -> dict[str, float]:
    """Score every response of ``lists`` in one batched pass, back-propagate ``loss * scale``; return metrics.

    ``scorer`` is a :class:`~stages.train.scorer.ListScorer`, or that wrapped in DDP (whose backward
    then averages the gradients across ranks). ``autocast`` runs the forward in bfloat16 autocast
    on GPU (the loss itself is computed in float32).
    """
    import torch

    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        sums, counts, image_terms = scorer(lists)
    batch = _list_batch(lists, sums, counts, config.loss, image_terms)
    out = list_loss(config.loss, batch, loss_params(config))
    (out.loss * scale).backward()
    metrics = pair_metrics(implicit_rewards(config.loss, batch, loss_params(config)).detach(), batch.rewards, batch.mask)
    return {"loss": out.loss.item(), "tokens": float(counts.sum()), "lists": float(out.row_valid.sum()), **metrics}


def _merge_metrics(parts: list[dict[str, float]], info: DistInfo = SINGLE, device: Any = "cpu") -> dict[str, float]:
    """One step's metrics from its micro-steps on every rank: mean loss, summed counts, pair-weighted accuracy and margin."""
    weighted = ("reward_accuracy", "reward_margin")
    sums = [
        sum(p["loss"] for p in parts),
        float(len(parts)),
        sum(p["tokens"] for p in parts),
        sum(p["lists"] for p in parts),
        sum(p["pairs"] for p in parts),
        *(sum(p[key] * p["pairs"] for p in parts if p["pairs"]) for key in weighted),
    ]
    loss, n_parts, tokens, n_lists, pairs, *totals = all_reduce_sum(sums, info, device)
    merged = {"loss": loss / n_parts, "tokens": tokens, "lists": n_lists, "pairs": pairs}
    for key, total in zip(weighted, totals):
        merged[key] = total / pairs if pairs else float("nan")
    return merged


def precision(config: TrainConfig) -> tuple[str, bool]:
    """(weights dtype, bf16 autocast?) for the config on the device it resolves to.

    On GPU, ``auto`` keeps float32 master weights under bf16 autocast (a 5e-6 update is below
    bf16's resolution), except under LoRA where the frozen base is stored in bf16 (peft keeps the
    adapters in float32). On CPU everything is float32 unless ``dtype`` says otherwise.
    """
    from stages.sample.hf_backend import resolve_device

    if resolve_device(config.device) != "cuda":
        return ("float32" if config.dtype == "auto" else config.dtype), False
    if config.dtype == "auto":
        return ("bfloat16" if config.lora else "float32"), True
    return config.dtype, config.dtype == "bfloat16"


def _under_any(parts: list[str]) -> str | None:
    """A peft module regex matching every module inside one named by ``parts`` (e.g. the whole vision tower)."""
    import re

    if not parts:
        return None
    return r"(?:.*\.)?(?:" + "|".join(re.escape(p) for p in parts) + r")(?:\..*)?"


def _load_policy(config: TrainConfig) -> tuple[Any, Any]:
    """Load the model to train (optionally wrapped with LoRA adapters) and its processor."""
    import torch

    from stages.sample.hf_backend import load_vlm

    if not config.model:
        raise ConfigError("[train] model is empty and no sample model was filled in; set [train] model to a folder or Hub id")
    model, processor = load_vlm(config.model, device=config.device, dtype=precision(config)[0])
    torch.manual_seed(config.seed)  # LoRA initialisation and dropout draw from this stream (checkpointed)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if config.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_target_modules),
            exclude_modules=_under_any(config.lora_exclude_modules),
            modules_to_save=list(config.lora_modules_to_save) or None,
        )
        model = get_peft_model(model, lora)
        if config.gradient_checkpointing:
            model.enable_input_require_grads()
    model.train()
    return model, processor


def _data_digest(lists: list[ListExample]) -> str:
    h = hashlib.sha256()
    for ex in lists:
        h.update(json.dumps([ex.task_id, ex.responses, ex.rewards], default=str).encode())
    return h.hexdigest()[:16]


def _check_resume(saved: dict[str, Any], config: TrainConfig, digest: str, where: Path, world_size: int = 1) -> None:
    saved_world = saved["counters"].get("world_size", 1)
    if saved_world != world_size:
        raise ConfigError(
            f"[train] cannot resume from {where}: it was written by {saved_world} training process(es) and this "
            f"run has {world_size} (the global batch and data order depend on it); relaunch with "
            f"{saved_world} process(es) (perpo-pipeline train --nproc) or delete {where.parent} to start over"
        )
    now = config.model_dump(mode="json")
    changed = sorted(k for k in now if k not in RESUME_NEUTRAL_FIELDS and saved["config"].get(k) != now[k])
    if changed or saved["counters"]["data_digest"] != digest:
        what = f"config fields {changed}" if changed else "the training lists"
        raise ConfigError(
            f"[train] cannot resume from {where}: {what} changed since it was written; "
            f"restore them or delete {where.parent} to start over"
        )


class _JsonlLog:
    """``train_log.jsonl``: one JSON object per logged step; on resume, lines after the resumed step are dropped."""

    def __init__(self, path: Path, keep_through: int) -> None:
        self.path = path
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        self.records = [r for r in map(json.loads, lines) if r["step"] <= keep_through]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in self.records), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        # NaN (no pair in the step) is not JSON: write null
        record = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
        self.records.append(record)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _save_model(model: Any, processor: Any, config: TrainConfig, path: Path) -> Path:
    """save_pretrained the trained model (LoRA merged unless lora_merge is off) and its processor, atomically."""
    if config.lora and config.lora_merge:
        model = model.merge_and_unload()
    return save_model_folder(model, processor, path)


def _usable_lists(config: TrainConfig, examples: list[ListExample]) -> list[ListExample]:
    """The lists loss ``config.loss`` can learn from; a user error if there are none or a needed reference is missing."""
    stage1 = config.loss is LossName.POVID and config.povid_stage == 1  # POVID's stage 1 needs a hallucination
    lists = [ex for ex in examples if usable_list(config.loss, ex.rewards, ex.origins)
             and not (stage1 and "hallucination" not in ex.origins)]
    if not lists:
        raise ConfigError(
            f"[train] none of the {len(examples)} lists can train loss {config.loss.value!r} (no reward spread"
            + (", or no clean / hallucinated / distorted-image answer" if config.loss in (LossName.POVID, LossName.POVID_OFFLINE) else "")
            + "); check the rank stage's output or choose another loss"
        )
    if LOSSES[config.loss].needs_reference and any(ex.ref_logps is None for ex in lists):
        raise ConfigError(
            f"[train] loss {config.loss.value!r} needs reference log-probs but some lists have no ref_logps; "
            "run the reference stage first or set [train] loss = 'leanpo'"
        )
    if LOSSES[config.loss].image_term and config.povid_stage == 2:
        if any(ex.image_cell is None for ex in lists):
            raise ConfigError("[train] loss 'povid' needs an image per task (its image term noises it); "
                              "use loss = 'povid_offline' or 'dpo' for text-only tasks")
        if any(ex.ref_povid_logps is None for ex in lists):
            raise ConfigError(
                "[train] loss 'povid' needs the reference's POVID image term (ref_povid_logps) but some lists have "
                "none; set [reference] povid_image_term = true and run the reference stage (or povid_two_stage = true)"
            )
    return lists


def param_groups(model: Any, config: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters in AdamW groups: the rest at ``learning_rate`` (first, the logged lr), then the
    projector and the vision tower at their own rates when set (as LLaVA's trainer groups mm_projector_lr)."""
    own = [(config.vision_tower_learning_rate, config.vision_tower_modules),
           (config.projector_learning_rate, config.projector_modules)]
    groups: list[dict[str, Any]] = [{"params": [], "lr": config.learning_rate}]
    groups += [{"params": [], "lr": lr} for lr, _ in own]
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        k = next((i + 1 for i, (lr, parts) in enumerate(own) if lr is not None and any(p in name for p in parts)), 0)
        groups[k]["params"].append(param)
    return [g for i, g in enumerate(groups) if i == 0 or g["params"]]


def warmup_steps(config: TrainConfig, total: int) -> int:
    """Warm-up steps: ``warmup_steps``, else ``ceil(warmup_ratio × total)`` (transformers' TrainingArguments rule)."""
    return config.warmup_steps or math.ceil(config.warmup_ratio * total)


def _build_optimizer(model: Any, config: TrainConfig, total: int) -> tuple[list[Any], Any, Any]:
    """The trainable parameters, AdamW over their groups and the learning-rate schedule of ``total`` steps."""
    import torch
    from transformers import get_scheduler

    groups = param_groups(model, config)
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = "constant_with_warmup" if config.lr_scheduler == "constant" else config.lr_scheduler
    scheduler = get_scheduler(schedule, optimizer, num_warmup_steps=warmup_steps(config, total), num_training_steps=total)
    return [p for g in groups for p in g["params"]], optimizer, scheduler


def _resume(out_dir: Path, model: Any, optimizer: Any, scheduler: Any, config: TrainConfig, digest: str, info: DistInfo) -> int:
    """Load the newest checkpoint under ``out_dir/checkpoints`` (rank 0's choice, so every rank loads the same
    one) after checking it was written for this config, these lists and this process count; return its step."""
    latest = all_gather_objects(latest_checkpoint(out_dir / "checkpoints"), info)[0]
    if latest is None:
        return 0
    if not is_checkpoint(latest):
        raise ConfigError(
            f"[train] rank {info.rank} cannot see checkpoint {latest}, which rank 0 resumes from; "
            "several machines need the run folder on a shared filesystem"
        )
    saved = load_checkpoint(latest, model, optimizer, scheduler, rank=info.rank)
    _check_resume(saved, config, digest, latest, info.world_size)
    return saved["counters"]["step"]


def _wrap_scorer(model: Any, processor: Any, config: TrainConfig, lists: list[ListExample], autocast: bool, info: DistInfo) -> Any:
    """The module one step calls: a :class:`ListScorer`, wrapped in DDP when several processes train."""
    from stages.train.distributed import wrap_ddp
    from stages.train.scorer import ListScorer, has_unused_parameters

    image_term = LOSSES[config.loss].image_term and config.povid_stage == 2
    scorer = ListScorer(model, processor, config.forward_batch_size, config.share_prompt, image_term)
    if info.distributed:
        unused = any(all_gather_objects(has_unused_parameters(scorer, lists, autocast), info))
        scorer = wrap_ddp(scorer, info, find_unused_parameters=unused)
    return scorer


def _forward_backward(scorer: Any, lists: list[ListExample], step: int, config: TrainConfig, autocast: bool, info: DistInfo) -> list[dict[str, float]]:
    """Back-propagate every micro-batch of optimizer step ``step``; DDP syncs gradients on the last one only."""
    micro = _step_micro_batches(step, len(lists), config, info)
    parts = []
    for k, idx in enumerate(micro):
        accumulate = info.distributed and k < len(micro) - 1
        with scorer.no_sync() if accumulate else contextlib.nullcontext():
            parts.append(_micro_step(scorer, [lists[i] for i in idx], config, 1 / len(micro), autocast))
    return parts


def _optimizer_step(params: list[Any], optimizer: Any, scheduler: Any, config: TrainConfig) -> float:
    """Clip, step the optimizer and the schedule, clear the gradients; return the learning rate the step used."""
    import torch

    if config.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return lr


def _checkpoint(out_dir: Path, step: int, total: int, digest: str, model: Any, optimizer: Any, scheduler: Any,
                config: TrainConfig, info: DistInfo) -> None:
    """Rank 0 writes checkpoint ``step`` with every rank's RNG state; every rank waits until it is on disk."""
    rank_rng = all_gather_objects(rng_state(), info)
    if info.is_main:
        counters = {"step": step, "total": total, "data_digest": digest, "world_size": info.world_size}
        save_checkpoint(out_dir / "checkpoints", step, model, optimizer, scheduler, counters,
                        config.model_dump(mode="json"), config.keep_checkpoints, rank_rng)
    barrier(info)


def _summary(out_dir: Path, step: int, resumed_from: int, lists: list[ListExample], n_examples: int,
             quarantine: list[dict[str, Any]]) -> dict[str, Any]:
    """What :func:`train_model` returns: paths, counters, the last logged metrics and the quarantined rows."""
    log_path = out_dir / "train_log.jsonl"
    last = _read_log(log_path)[-1] if log_path.exists() and log_path.stat().st_size else {}
    return {
        "model_dir": str(out_dir / "model"),
        "log_path": str(log_path),
        "steps": step,
        "resumed_from": resumed_from,
        "lists": len(lists),
        "skipped_lists": n_examples - len(lists),
        "final_loss": last.get("loss"),
        "final_reward_accuracy": last.get("reward_accuracy"),
        "quarantine": quarantine,
    }


def train_model(
    config: TrainConfig,
    tasks_table: pa.Table,
    listwise_table: pa.Table,
    out_dir: str | Path,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``config.model`` on the listwise rows and write ``out_dir/model`` (save_pretrained + processor).

    Also writes ``out_dir/train_log.jsonl`` (loss, reward accuracy, mean margin, lr per step) and
    resumable checkpoints under ``out_dir/checkpoints``; if one exists, training resumes from the
    newest (its config, lists and process count must match). ``on_step(record)`` is called after
    each step. Returns paths, counters and the final metrics, plus ``quarantine`` entries for
    unusable rows.

    When the caller has joined a process group (:func:`stages.train.distributed.init_distributed`),
    every rank calls this with the same arguments and they train one model together (DDP); rank 0
    writes the files, and every rank returns once they are written.
    """
    from stages.train.distributed import current

    info, out_dir = current(), Path(out_dir)
    # ---- prepare: the lists this loss can learn from
    examples, quarantine = load_lists(tasks_table, listwise_table)
    lists = _usable_lists(config, examples)
    digest = _data_digest(lists)
    # ---- build: the policy (LoRA), the optimizer and its schedule
    model, processor = _load_policy(config)
    autocast = precision(config)[1]
    total = total_steps(len(lists), config, info.world_size)
    params, optimizer, scheduler = _build_optimizer(model, config, total)
    # ---- resume from the newest checkpoint, if any
    step = resumed_from = _resume(out_dir, model, optimizer, scheduler, config, digest, info)
    log = _JsonlLog(out_dir / "train_log.jsonl", keep_through=step) if info.is_main else None
    scorer = _wrap_scorer(model, processor, config, lists, autocast, info)

    while step < total:
        # ---- forward / backward over the step's micro-batches
        t0 = time.perf_counter()
        parts = _forward_backward(scorer, lists, step, config, autocast, info)
        # ---- optimizer step
        lr = _optimizer_step(params, optimizer, scheduler, config)
        step += 1
        # ---- log (metrics merged over every rank)
        record = {"step": step, "lr": lr, **_merge_metrics(parts, info, params[0].device), "seconds": time.perf_counter() - t0}
        if log is not None and (step % config.log_every == 0 or step == total):
            log.write(record)
        # ---- checkpoint
        if step % config.save_every == 0 or step == total:
            _checkpoint(out_dir, step, total, digest, model, optimizer, scheduler, config, info)
        if on_step is not None:
            on_step(record)

    # ---- save the trained model (rank 0), then every rank returns
    if info.is_main:
        _save_model(model, processor, config, out_dir / "model")
    barrier(info)
    return _summary(out_dir, step, resumed_from, lists, len(examples), quarantine)
