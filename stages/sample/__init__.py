"""The sample stage: ``n`` responses per task from the policy VLM.

- Stage: :data:`SPEC` (``tasks`` -> ``candidates``), :class:`SampleConfig` (the model is ``[sample.engine]``).
- Rows: :func:`sample_rows` turns items into candidate rows (perturb reuses it), :func:`ground_truth_rows`.

The engines themselves (hf, vllm, chat rendering, seeds, request types) live in :mod:`stages.vlm`.
Nothing here imports torch, transformers or vllm at import time.
"""

from stages.sample.config import DEFAULT_MODEL, SampleConfig, SamplingSettings
from stages.sample.rows import SampleItem, cand_id, ground_truth_rows, items_from_tasks, sample_rows
from stages.sample.stage import SPEC, run_shard, setup

__all__ = [
    "SPEC",
    "SampleConfig",
    "SamplingSettings",
    "DEFAULT_MODEL",
    "setup",
    "run_shard",
    "SampleItem",
    "sample_rows",
    "items_from_tasks",
    "ground_truth_rows",
    "cand_id",
]
