"""Resumable training checkpoints: trainable weights, optimizer, scheduler, counters, RNG and config.

Under several processes the weights, optimizer and scheduler are the same on every rank (DDP keeps
them in step) and rank 0 writes them once; the RNG differs per rank (dropout draws as many numbers
as its rank's batch needs), so every rank's state is kept and each rank restores its own.

Each checkpoint is a folder ``step-NNNNNNNN`` written through :func:`stages.lib.files.atomic_folder`
(a temporary sibling renamed into place), so a crash never leaves a half-written checkpoint that a
resume would trust.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from stages.lib.files import atomic_folder

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint", "is_checkpoint", "trainable_state", "rng_state"]

_NAME = re.compile(r"^step-(\d{8})$")
_FILE = "checkpoint.pt"


def trainable_state(model: Any) -> dict[str, Any]:
    """The parameters being trained (all of them, or only the LoRA adapters), detached and on CPU."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    """This process's torch RNG state (CPU and, when present, every visible GPU)."""
    import torch

    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def save_checkpoint(
    root: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    counters: dict[str, Any],
    config: dict[str, Any],
    keep: int,
    rank_rng: list[dict[str, Any]] | None = None,
) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically and delete all but the newest ``keep``; return its folder.

    ``rank_rng`` is every rank's :func:`rng_state` in rank order (multi-process); it defaults to this
    process's state alone.
    """
    import torch

    rank_rng = rank_rng or [rng_state()]
    final = root / f"step-{step:08d}"
    payload = {
        "model": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "counters": counters,
        "config": config,
        "rng": rank_rng[0],
    }
    if len(rank_rng) > 1:
        payload["rank_rng"] = rank_rng
    with atomic_folder(final) as staging:
        torch.save(payload, staging / _FILE)
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
    for old in _checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def is_checkpoint(path: Path) -> bool:
    """True if ``path`` is a complete checkpoint folder (as this process's filesystem shows it)."""
    return bool(_NAME.match(path.name)) and (path / _FILE).is_file()


def _checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if is_checkpoint(p)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint folder under ``root``, or None."""
    found = _checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, rank: int = 0) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and rank ``rank``'s RNG from ``path``; return ``{"counters", "config"}``."""
    import torch

    payload = torch.load(path / _FILE, map_location="cpu", weights_only=True)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in payload["model"].items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    states = payload.get("rank_rng", [payload["rng"]])
    rng = states[rank] if rank < len(states) else states[0]  # another world size: the caller refuses the resume
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return {"counters": payload["counters"], "config": payload["config"]}
