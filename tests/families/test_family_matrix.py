"""The family matrix: every tiny family build through sample -> perturb -> score -> rank -> reference
-> train -> export, checked against transformers' own path.

For each family the stored ``logprob_sum`` of every policy candidate and its reference log-prob must
equal a plain forward pass over the prompt as transformers' ``apply_chat_template(tokenize=True)``
encodes it (PaliGemma: its processor's prefix format) followed by the candidate's sampled token ids;
the ground-truth candidate of a grounding task, written in the family's coordinate language, must
score 1.0 under the family's box format.
"""

from __future__ import annotations

import json
import math

import pytest

from pipeline.config import load_config
from pipeline.outputs import finalize_run
from pipeline.runner import run_pipeline
from pipeline.store import RunStore
from stages.lib.families import family_for_model_type
from stages.lib.models.tiny_families import TINY_FAMILIES

pytestmark = [pytest.mark.families, pytest.mark.slow]

TOLERANCE = 1e-3


def _settings(model_dir) -> list[str]:
    return [
        "run.progress=false",
        "run.report=false",
        "ingest.n_tasks=4",
        "ingest.shard_size=4",
        "ingest.eval_fraction=0.0",
        "eval.enabled=false",
        f'sample.engine.model="{model_dir}"',
        'sample.family=""',
        "sample.n=2",
        "sample.engine.batch_size=4",
        "sample.max_tokens=6",
        "perturb.max_tokens=6",
        "perturb.distortion.n_answers=1",
        'perturb.distortion.distortions=[{ name = "jpeg", label = "jpeg" }]',
        "train.max_steps=1",
        "train.save_every=1",
    ]


def _plain_forward(model, processor, family: str, image, prompt: str, response_ids: list[int]) -> float:
    """Σ log p(response_ids | prompt, image) from one forward pass over the sequence transformers builds."""
    import torch

    if family == "paligemma":  # no chat template: the processor writes "<image>" * n + bos + prefix + "\n"
        enc = processor(text="<image>" + prompt, images=[image], return_tensors="pt")
        enc.pop("labels", None)
    else:
        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}]
        enc = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                            return_tensors="pt")
    n_prompt = enc["input_ids"].shape[1]
    ids = torch.cat([enc["input_ids"], torch.tensor([response_ids], dtype=enc["input_ids"].dtype)], dim=1)
    inputs = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")}
    inputs["input_ids"] = ids
    inputs["attention_mask"] = torch.ones_like(ids)
    for key in ("token_type_ids", "mm_token_type_ids"):
        if key in enc:
            fill = 1 if (key == "token_type_ids" and family == "paligemma") else 0
            tail = torch.full((1, len(response_ids)), fill, dtype=enc[key].dtype)
            inputs[key] = torch.cat([enc[key], tail], dim=1)
    with torch.inference_mode():
        logits = model(**inputs).logits[0].float()
    logps = torch.log_softmax(logits[n_prompt - 1 : -1], dim=-1)
    return float(logps.gather(1, torch.tensor(response_ids)[:, None]).sum())


@pytest.mark.parametrize("family", list(TINY_FAMILIES))
def test_family_runs_the_whole_chain_with_exact_logprobs(family, tiny_family_dir, tmp_path):
    from data_schemas.images import decode_image_cell
    from stages.lib.rewards import iou_reward  # noqa: F401  (the reward the score stage applies)
    from stages.vlm.engine_config import EngineConfig
    from stages.vlm.load import load_vlm

    model_dir = tiny_family_dir(family)
    profile = family_for_model_type(TINY_FAMILIES[family].model_type)
    cfg = load_config(None, _settings(model_dir))
    run_dir = tmp_path / "run"
    summary = {s.stage: s for s in run_pipeline(cfg, run_dir, use_ray=False)}
    finalize_run(cfg, run_dir, ran=list(summary))
    store = RunStore(run_dir)
    assert (run_dir / "export" / "README.md").is_file()
    assert (run_dir / "train" / "artifacts" / "model" / "config.json").is_file()
    # before its first update the policy is the reference: train scores the same ids the reference stored
    first_step = json.loads((run_dir / "train" / "artifacts" / "train_log.jsonl").read_text().splitlines()[0])
    assert abs(first_step["reward_margin"]) < 1e-3, first_step
    quarantine = {s: summary[s].rows.get("quarantine", 0) for s in summary}
    candidates = store.read_table("sample", "candidates", "candidates").to_pylist()
    policy = [c for c in candidates if c["origin"] == "policy"]
    # every request sampled in batches of 4 (no image_rejected: images go one list per prompt where needed)
    assert len(policy) == 4 * 2, f"{family}: {len(policy)} policy candidates of 8 (quarantine: {quarantine})"

    # every grounding ground truth, written in the family's format, scores 1.0 under it
    scored = store.read_table("score", "scored", "scored").to_pylist()
    tasks = {t["task_id"]: t for t in store.read_table("ingest", "tasks", "tasks").to_pylist()}
    gt = [s for s in scored if s["origin"] == "ground_truth" and tasks[s["task_id"]]["task_type"] == "grounding"]
    assert gt and all(s["reward"] == 1.0 for s in gt), [(s["text"], s["reward"]) for s in gt]

    # stored and reference log-probs equal a plain forward over the sampled token ids
    listwise = store.read_table("reference", "listwise", "listwise").to_pylist()
    ref = {cid: lp for row in listwise for cid, lp in zip(row["cand_ids"], row["ref_logps"])}
    model, processor = load_vlm(EngineConfig(model=str(model_dir), device="cpu", dtype="float32"), "test")
    diffs = []
    for cand in policy:
        assert cand.get("token_ids") is not None, f"{family}: policy candidates store no token ids"
        task = tasks[cand["task_id"]]
        truth = _plain_forward(model, processor, profile.name, decode_image_cell(task["image"]), task["prompt"],
                               cand["token_ids"])
        diffs.append(abs(truth - cand["logprob_sum"]))
        if cand["cand_id"] in ref:
            diffs.append(abs(truth - ref[cand["cand_id"]]))
    # the candidates we wrote end with the token the policy ends its turn with (seen in its own samples)
    stops = {c["token_ids"][-1] for c in candidates if c["origin"] == "policy" and c["finish_reason"] == "stop"}
    eos = model.generation_config.eos_token_id
    end = next(iter(stops)) if len(stops) == 1 else (eos[0] if isinstance(eos, list) else eos)
    tok = processor.tokenizer
    written = 0
    for row in listwise:
        task = tasks[row["task_id"]]
        for cid, origin, text, lp in zip(row["cand_ids"], row["origins"], row["responses"], row["ref_logps"]):
            if origin not in ("ground_truth", "hallucination"):
                continue
            ids = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] + [end]
            truth = _plain_forward(model, processor, profile.name, decode_image_cell(task["image"]), task["prompt"], ids)
            diffs.append(abs(truth - lp))
            written += 1
    assert written, f"{family}: no ground-truth or hallucinated response reached the reference stage"
    print(f"{family}: {len(diffs)} log-probs, max |stored - plain forward| = {max(diffs):.2e}")
    assert diffs and max(diffs) <= TOLERANCE, f"{family}: max |Δ logprob| = {max(diffs):.2e}"
    assert not math.isnan(max(diffs))
