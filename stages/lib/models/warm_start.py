"""A warm-started demo policy: the tiny VLM after supervised fine-tuning on a synthetic split.

The random-weight tiny model answers every task with noise, so every policy answer scores 0 and a
preference list is "ground truth vs hallucination vs noise". PerPO's method needs self-sampled
answers whose rewards *spread*. This module fine-tunes the tiny model on the ground-truth answers of
a demo corpus drawn with another seed (:data:`WarmStartSettings.corpus_seed`, far from the demo's
seed 0, so no task repeats: tests/stages/lib/models/test_warm_start.py checks the default sizes)
until it answers in the tasks' formats and is right some of the time.

The loss is the mean token negative log-likelihood of the answer (prompt tokens masked), the usual
SFT objective; prompts are rendered by :func:`stages.vlm.chat.render_prompt` and answers are
tokenized with EOS as :func:`stages.vlm.logprobs.tokenize_triples` does, so the policy learns
exactly the text the pipeline later samples and scores. The examples are tokenized once up front
(the image processor is the slow part on CPU) and then batched from tensors.

The folder is a plain ``save_pretrained`` model (loadable like any Hub id) plus
``perpo_warm_start.json`` holding the settings: :func:`ensure_warm_tiny_vlm` reuses a folder whose
settings match (the cache under ``runs/_models/``) and rebuilds it otherwise.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Final

from stages.lib.errors import ModelError

__all__ = ["WARM_START_MARKER", "WarmStartSettings", "is_warm_start_dir", "build_warm_tiny_vlm", "ensure_warm_tiny_vlm"]

WARM_START_MARKER: Final[str] = "perpo_warm_start.json"
_FORMAT_VERSION: Final[int] = 1


@dataclass(frozen=True)
class WarmStartSettings:
    """How the warm start is made; a cached folder is reused only when all of these match."""

    model_seed: int = 0  # seed of the tiny model's random initial weights
    corpus_seed: int = 7_919  # demo corpus seed of the SFT split (the demo run uses seed 0)
    n_examples: int = 4_000
    steps: int = 500
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 25
    seed: int = 0  # data order

    def marker(self) -> dict[str, Any]:
        """The JSON written beside the weights (settings, model sizes, format version)."""
        from stages.lib.models.tiny_vlm import DEMO_POLICY_SPEC

        return {"format_version": _FORMAT_VERSION, **asdict(self), "spec": asdict(DEMO_POLICY_SPEC)}


def is_warm_start_dir(path: str | Path, settings: WarmStartSettings | None = None) -> bool:
    """True if ``path`` holds a warm-started model (made with ``settings``, when given)."""
    marker = Path(path) / WARM_START_MARKER
    if not marker.is_file() or not (Path(path) / "config.json").is_file():
        return False
    if settings is None:
        return True
    try:
        return json.loads(marker.read_text(encoding="utf-8")) == settings.marker()
    except ValueError:
        return False


def _examples(settings: WarmStartSettings) -> list[tuple[Any, str, str]]:
    """(image, prompt, answer) of the first ``n_examples`` tasks of demo corpus ``corpus_seed``."""
    from data_schemas.images import decode_image_cell
    from stages.ingest.demo_corpus import demo_item, render_demo_item

    out = []
    for index in range(settings.n_examples):
        item = demo_item(settings.corpus_seed, index)
        image = decode_image_cell({"bytes": render_demo_item(item)})
        out.append((image, item.task.prompt, item.task.answer or ""))
    return out


def _tokenize(processor: Any, examples: list[tuple[Any, str, str]], chunk: int = 256) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask``, ``labels`` (-100 off the answer) and ``pixel_values``."""
    import torch
    import torch.nn.functional as F

    from stages.vlm.logprobs import tokenize_triples

    parts = []
    for start in range(0, len(examples), chunk):
        part = examples[start : start + chunk]
        enc = tokenize_triples(processor, [e[0] for e in part], [e[1] for e in part], [e[2] for e in part])
        parts.append(enc)
    width = max(p["input_ids"].shape[1] for p in parts)
    pad_id = processor.tokenizer.pad_token_id or 0

    def cat(key: str, value: int) -> Any:
        return torch.cat([F.pad(p[key], (0, width - p[key].shape[1]), value=value) for p in parts])

    input_ids = cat("input_ids", pad_id)
    response = cat("response_mask", 0).bool()
    return {
        "input_ids": input_ids,
        "attention_mask": cat("attention_mask", 0),
        "labels": torch.where(response, input_ids, torch.full_like(input_ids, -100)),
        "pixel_values": torch.cat([p["pixel_values"] for p in parts]).to(torch.float16),  # halves the memory
    }


def _batch(data: dict[str, Any], index: Any) -> dict[str, Any]:
    """Rows ``index`` of the tokenized data, trimmed to their longest row."""
    import torch

    width = int(data["attention_mask"][index].sum(dim=1).max())
    out = {k: v[index][:, :width] for k, v in data.items() if k != "pixel_values"}
    out["pixel_values"] = data["pixel_values"][index].to(torch.float32)
    return out


def sft_train(model: Any, data: dict[str, Any], settings: WarmStartSettings, log: Callable[[str], None] | None = None) -> list[float]:
    """Fine-tune ``model`` in place on tokenized ``data`` (AdamW, linear warm-up then cosine decay); return the losses."""
    import torch
    from transformers import get_scheduler

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=settings.warmup_steps, num_training_steps=settings.steps)
    gen = torch.Generator().manual_seed(settings.seed)
    n = data["input_ids"].shape[0]
    order = torch.randperm(n, generator=gen)
    cursor, losses, started = 0, [], time.perf_counter()
    for step in range(settings.steps):
        if cursor + settings.batch_size > n:  # next epoch: a new permutation
            order, cursor = torch.randperm(n, generator=gen), 0
        index = order[cursor : cursor + settings.batch_size]
        cursor += settings.batch_size
        loss = model(**_batch(data, index), use_cache=False).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if log is not None and (step % 50 == 0 or step == settings.steps - 1):
            recent = losses[-50:]
            log(f"warm start: step {step + 1}/{settings.steps}, loss {sum(recent) / len(recent):.3f}, "
                f"{time.perf_counter() - started:.0f}s")
    model.eval()
    return losses


def build_warm_tiny_vlm(
    out_dir: str | Path, settings: WarmStartSettings = WarmStartSettings(), log: Callable[[str], None] | None = None
) -> Path:
    """Build the tiny VLM, fine-tune it as ``settings`` say, and save it to ``out_dir`` (atomically); return it.

    Raises :class:`ModelError` when ``out_dir`` is a non-empty folder that is not a tiny or warm model
    (never overwritten).
    """
    from stages.lib.models.folder import save_model_folder
    from stages.lib.models.tiny_vlm import DEMO_POLICY_SPEC, TINY_MODEL_MARKER, build_tiny_vlm, is_tiny_model_dir
    from stages.vlm.engine_config import EngineConfig
    from stages.vlm.load import load_vlm

    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not (is_tiny_model_dir(out) or is_warm_start_dir(out)):
        raise ModelError(
            f"cannot build the warm-started model at {out}: the folder is not empty and is not a tiny model; "
            "choose an empty or new folder"
        )
    if settings.steps < 1 or settings.n_examples < settings.batch_size:
        raise ModelError(f"warm start needs steps >= 1 and n_examples >= batch_size; got {settings}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".warm-base-", dir=out.parent) as tmp:
        base = build_tiny_vlm(Path(tmp) / "base", seed=settings.model_seed, spec=DEMO_POLICY_SPEC)
        model, processor = load_vlm(EngineConfig(model=str(base), device="cpu", dtype="float32"), "warm-start")
        tiny_marker = (base / TINY_MODEL_MARKER).read_text(encoding="utf-8")
    import torch

    data = _tokenize(processor, _examples(settings))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model is overhead-bound: a second thread only contends (tests/conftest.py)
    try:
        losses = sft_train(model, data, settings, log)
    finally:
        torch.set_num_threads(threads)
    tail = losses[-max(1, math.ceil(len(losses) / 10)) :]
    marker = settings.marker()
    info = {**marker, "final_loss": sum(tail) / len(tail)}
    extra = {
        TINY_MODEL_MARKER: tiny_marker,
        WARM_START_MARKER: json.dumps(marker, indent=2) + "\n",
        "perpo_warm_start_log.json": json.dumps(info, indent=2) + "\n",
    }
    return save_model_folder(model, processor, out, extra)


def ensure_warm_tiny_vlm(
    out_dir: str | Path, settings: WarmStartSettings = WarmStartSettings(), log: Callable[[str], None] | None = None
) -> tuple[Path, bool]:
    """Return ``(folder, built)``: the cached warm start in ``out_dir`` if its settings match, else a new build."""
    out = Path(out_dir)
    if is_warm_start_dir(out, settings):
        return out, False
    return build_warm_tiny_vlm(out, settings, log), True
