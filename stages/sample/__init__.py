"""The sample stage and the sampling toolkit other stages reuse.

- Stage: :data:`SPEC` (``tasks`` -> ``candidates``), :class:`SampleConfig`.
- Sampling: :func:`make_sampler` (``hf`` | ``vllm``, see :data:`BACKENDS`), the :class:`Sampler`
  protocol and its request/result types, :func:`sample_rows` to turn items into candidate rows.
- Prompt format shared with the reference and train stages: :func:`build_messages`, :func:`render_prompt`.

Nothing here imports torch, transformers or vllm at import time.
"""

from stages.sample.backends import BACKENDS, make_sampler
from stages.sample.chat import build_messages, render_prompt
from stages.sample.config import DEFAULT_MODEL, Backend, SampleConfig, SamplingSettings
from stages.sample.hf_backend import HFSampler, load_vlm
from stages.sample.rows import SampleItem, cand_id, ground_truth_rows, items_from_tasks, sample_rows
from stages.sample.sampler import SampledText, SampleRequest, SampleResult, Sampler
from stages.sample.seeds import request_seed, sequence_seed
from stages.sample.stage import SPEC, run_shard, setup
from stages.sample.vllm_backend import VLLMSampler, build_vllm_inputs

__all__ = [
    "SPEC",
    "SampleConfig",
    "SamplingSettings",
    "Backend",
    "BACKENDS",
    "DEFAULT_MODEL",
    "make_sampler",
    "setup",
    "run_shard",
    "Sampler",
    "SampleRequest",
    "SampledText",
    "SampleResult",
    "HFSampler",
    "VLLMSampler",
    "load_vlm",
    "build_vllm_inputs",
    "SampleItem",
    "sample_rows",
    "items_from_tasks",
    "ground_truth_rows",
    "cand_id",
    "request_seed",
    "sequence_seed",
    "build_messages",
    "render_prompt",
]
