"""Fixtures of the eval tests: held-out tasks of every scored type and a scripted sampler."""

from __future__ import annotations

import pytest

from data_schemas.tables import validate_table
from stages.vlm.requests import SampledText, SampleResult
from tests.factories import task_row

# Per task: the greedy answer, then the sampled answers (cycled), of the scripted model.
SCRIPT = {
    "g1": ["[4, 6, 24, 20]", "[4, 6, 24, 20]", "[0, 0, 2, 2]", "no box"],
    "g2": ["[0, 0, 10, 10], [30, 30, 40, 40]", "[0, 0, 10, 10]"],
    "o1": ["hello 42", "HELLO 42", "HELL0"],
    "v1": ["blue", "red", "blue"],
}


class ScriptedSampler:
    """Answers task ``t`` with ``SCRIPT[t][0]`` at temperature 0, else with ``SCRIPT[t][1:]`` in turn; counts requests."""

    backend = "hf"

    def __init__(self, model_name: str = "scripted", reject: tuple[str, ...] = ()):
        self.model_name = model_name
        self.reject = reject
        self.requests = []

    def sample(self, requests):
        self.requests += requests
        out = []
        for r in requests:
            task_id = r.request_id.split(":")[0]
            if task_id in self.reject:
                out.append(SampleResult.failed(r.request_id, "image_rejected", "refused"))
                continue
            answers = SCRIPT[task_id]
            texts = [answers[0]] if r.temperature == 0 else [answers[1 + i % (len(answers) - 1)] for i in range(r.n)]
            out.append(SampleResult(r.request_id, [SampledText(t, len(t.split()), -1.0, "stop") for t in texts]))
        return out


@pytest.fixture
def eval_tasks():
    """Two grounding tasks (one and two boxes), an OCR task and a VQA task, all held out."""
    rows = [
        task_row("g1", "grounding", "Box?", boxes=[[4.0, 6.0, 24.0, 20.0]], answer="[4, 6, 24, 20]", split="eval"),
        task_row("g2", "grounding", "Boxes?", boxes=[[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 40.0, 40.0]], split="eval"),
        task_row("o1", "ocr", "Read.", answer="HELLO 42", answers=["HELLO 42"], split="eval"),
        task_row("v1", "vqa", "Colour?", answer="blue", answers=["blue", "blue", "blue"], split="eval"),
    ]
    return validate_table(rows, "eval_tasks")
