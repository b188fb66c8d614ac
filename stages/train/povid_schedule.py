"""POVID's two-stage schedule in one train shard (``[train] loss = "povid"``, ``povid_two_stage = true``).

Source: YiyangZhou/POVID ``scripts/run_dpo.sh`` (stage 1: ``llava/train/train_dpo.py``, plain DPO of
the chosen answer vs its hallucinated rewrite, 3 epochs, from LLaVA-1.5) and ``scripts/run_povid.sh``
(stage 2: ``train_dpo_inherent.py``, the combined loss of :func:`stages.train.losses.povid_loss`,
1 epoch, from ``POVID_stage_one_merged``, which ``train_dpo_inherent.py`` also loads as ``model_ref``).
Both: LoRA r 128 / α 256, lr 1e-7, cosine with warm-up ratio 0.03, projector lr 2e-5.

Here: stage 1 trains ``povid_stage1_epochs`` epochs into ``out_dir/stage1`` (the LoRA merged into
``stage1/model``) with the reference stage's log-probs (the initial model); then the merged model
scores every response once, without gradients, as stage 2's frozen reference (``ref_logps`` and
POVID's image term ``ref_povid_logps``); stage 2 trains ``epochs`` epochs from that model into
``out_dir`` (``model/``, ``train_log.jsonl``, ``checkpoints/``). Each stage resumes from its own
checkpoints, so an interrupted schedule picks up where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from stages.train.config import TrainConfig

__all__ = ["train_povid_two_stage", "reference_under"]


def reference_under(model_dir: str | Path, config: TrainConfig, tasks: pa.Table, listwise: pa.Table) -> pa.Table:
    """``listwise`` with ``ref_logps``, ``ref_n_tokens`` and ``ref_povid_logps`` recomputed under the model in ``model_dir``."""
    import torch

    from data_schemas.tables import validate_table
    from stages.vlm.engine_config import EngineConfig
    from stages.vlm.load import load_vlm
    from stages.train.data import load_lists
    from stages.vlm.logprobs import response_logprobs
    from stages.train.povid import list_image_terms

    model, processor = load_vlm(EngineConfig(model=str(model_dir), device=config.device), "train")
    examples, _ = load_lists(tasks, listwise)  # rows it would quarantine were reported by stage 1 already
    images, prompts, responses, token_ids = [], [], [], []
    for ex in examples:
        image = ex.image()
        images += [image] * len(ex.responses)
        prompts += [ex.prompt] * len(ex.responses)
        responses += ex.responses
        token_ids += ex.response_token_ids or [None] * len(ex.responses)
    with torch.inference_mode():
        sums, counts = response_logprobs(model, processor, images, prompts, responses, config.forward_batch_size,
                                         share_prompt=config.share_prompt, response_ids=token_ids)
    sums, counts = sums.double().cpu().tolist(), counts.cpu().tolist()
    terms = list_image_terms(model, processor, examples, config.forward_batch_size)
    rows, start = [], 0
    for ex, term in zip(examples, terms):
        end = start + len(ex.responses)
        rows.append({**ex.row, "ref_logps": sums[start:end], "ref_n_tokens": counts[start:end], "ref_povid_logps": term})
        start = end
    return validate_table(rows, "listwise")


def train_povid_two_stage(
    config: TrainConfig,
    tasks_table: pa.Table,
    listwise_table: pa.Table,
    out_dir: str | Path,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run POVID's stage 1 then stage 2 (see the module docstring); return stage 2's :func:`train_model` result.

    The result adds ``stage1_steps`` and ``stage1_model_dir``; its ``quarantine`` holds both stages' rows.
    """
    from stages.train.loop import train_model

    out_dir = Path(out_dir)
    # ---- stage 1: plain DPO of the chosen answer vs its hallucinations, from the configured model
    stage1 = config.model_copy(
        update={"povid_two_stage": False, "povid_stage": 1, "epochs": config.povid_stage1_epochs, "lora_merge": True}
    )
    first = train_model(stage1, tasks_table, listwise_table, out_dir / "stage1", on_step)
    # ---- the merged stage-1 model is stage 2's frozen reference: score every response once
    listwise2 = reference_under(first["model_dir"], config, tasks_table, listwise_table)
    # ---- stage 2: the combined loss from the merged stage-1 model
    stage2 = config.model_copy(update={"povid_two_stage": False, "povid_stage": 2, "model": first["model_dir"]})
    result = train_model(stage2, tasks_table, listwise2, out_dir, on_step)
    return {**result, "stage1_steps": first["steps"], "stage1_model_dir": first["model_dir"],
            "quarantine": first["quarantine"] + result["quarantine"]}
