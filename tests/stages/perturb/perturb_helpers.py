"""Hand-built tables and a scripted sampler for the perturb tests (no model, no network)."""

from __future__ import annotations

import hashlib
import io
from typing import Callable

import numpy as np
import pyarrow as pa

from data_schemas import validate_table
from stages.vlm.requests import SampledText, SampleRequest, SampleResult
from tests.factories import task_row


def png_bytes(width: int = 48, height: int = 40, seed: int = 0) -> bytes:
    """A small random RGB image, PNG-encoded."""
    from PIL import Image

    arr = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def noisy_task(task_id: str, task_type: str, prompt: str, answer: str | None, **fields) -> dict:
    """A ``tasks`` row (:func:`tests.factories.task_row`) whose image is random noise seeded by the task id."""
    image = png_bytes(seed=int(hashlib.md5(task_id.encode()).hexdigest()[:6], 16))
    return task_row(task_id, task_type, prompt, image=image, answer=answer, **fields)


def standard_tasks() -> pa.Table:
    """Four task types plus one task with an empty answer, validated against the tasks schema."""
    rows = [
        noisy_task("t-ground", "grounding", "Locate the red circle as [x1, y1, x2, y2].", "[4, 6, 30, 28]",
                 boxes=[[4.0, 6.0, 30.0, 28.0]]),
        noisy_task("t-ocr", "ocr", "Read the text in the image.", "INVOICE 10583"),
        noisy_task("t-vqa", "vqa", "How many dogs are there?", "2", answers=["2", "2", "two"]),
        noisy_task("t-cap", "caption", "Describe the image in one sentence.",
                 "A white dog sits on the left of a red bench near two bicycles."),
        noisy_task("t-empty", "caption", "Describe the image.", ""),
    ]
    return validate_table(rows, "tasks")


def policy_candidates(tasks: pa.Table, per_task: int = 2) -> pa.Table:
    """``per_task`` policy candidates per task, as the sample stage would write them."""
    rows = []
    for task_id in tasks.column("task_id").to_pylist():
        for i in range(per_task):
            rows.append(
                {
                    "task_id": task_id,
                    "cand_id": f"{task_id}:policy:{i}",
                    "origin": "policy",
                    "text": f"answer {i}",
                    "n_tokens": 3,
                    "logprob_sum": -1.5 - i,
                    "finish_reason": "stop",
                    "model": "policy-model",
                    "sample_index": i,
                    "seed": 100 + i,
                    "sampling": '{"n": 2}',
                    "distortion": None,
                }
            )
    return validate_table(rows, "candidates")


class ScriptedSampler:
    """A :class:`Sampler` whose outputs come from ``reply(request, i)``; it records every request it served."""

    backend = "scripted"

    def __init__(self, reply: Callable[[SampleRequest, int], str] | None = None, fail_ids: set[str] | None = None):
        self.model_name = "scripted-model"
        self.reply = reply or (lambda req, i: f"noise {req.seed % 97} {i}")
        self.fail_ids = fail_ids or set()
        self.requests: list[SampleRequest] = []
        self.calls = 0

    def sample(self, requests: list[SampleRequest]) -> list[SampleResult]:
        self.calls += 1
        self.requests.extend(requests)
        out = []
        for r in requests:
            if r.request_id in self.fail_ids:
                out.append(SampleResult(request_id=r.request_id, error="scripted failure"))
                continue
            texts = [self.reply(r, i) for i in range(r.n)]
            out.append(SampleResult(r.request_id, [SampledText(t, len(t.split()), -float(len(t)), "stop") for t in texts]))
        return out
