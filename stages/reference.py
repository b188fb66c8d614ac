"""The reference stage: each response's summed log-prob under the reference model, computed once.

Training then needs no second model in memory: the listwise rows carry ``ref_logps`` (summed over
response tokens, EOS included) and ``ref_n_tokens``, scored on the prompt format the sampler used
(:func:`stages.sample.chat.render_prompt`) exactly as the trainer scores the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from data_schemas.tables import validate_table
from pipeline.errors import ConfigError
from stages.base import ShardInputs, ShardOutput, ShardResult, StageConfig, StageSpec

__all__ = ["SPEC", "ReferenceConfig", "ReferenceModel", "setup", "run_shard", "score_lists"]


class ReferenceConfig(StageConfig):
    """``[reference]``: which model scores the responses and on what hardware."""

    # what is computed
    model: str = Field(
        "",
        description="Reference model: a local folder or Hub id. Empty means the sample stage's model "
        "(the policy before training is its own reference).",
    )
    append_eos: bool = Field(True, description="Score each response followed by the EOS token, as generated.")
    share_prompt: bool = Field(
        True,
        description="Run a list's prompt and image once and score its responses on the KV cache "
        "(llava-family models; others always score full sequences). Same numbers, less compute.",
    )
    # how fast / where
    batch_size: int = Field(16, ge=1, description="Responses scored per forward pass.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' uses a CUDA GPU when one is visible.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; 'auto' is bfloat16 on GPU, float32 on CPU."
    )
    num_actors: int = Field(1, ge=1, description="Model replicas (Ray actors) scoring shards in parallel.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs Ray reserves per actor (0 on CPU).")
    num_cpus: float = Field(1.0, gt=0, description="CPUs Ray reserves per actor.")


@dataclass
class ReferenceModel:
    """What :func:`setup` loads once per actor."""

    model: Any
    processor: Any
    name: str


def setup(config: ReferenceConfig) -> ReferenceModel:
    """Load the reference model and processor (eval mode); raises ConfigError/ModelError on a bad ``model``."""
    from stages.sample.hf_backend import load_vlm

    if not config.model:
        raise ConfigError(
            "[reference] model is empty and no sample model was filled in; set [reference] model "
            "(or [sample] model) to a model folder or Hub id"
        )
    model, processor = load_vlm(config.model, device=config.device, dtype=config.dtype)
    return ReferenceModel(model=model, processor=processor, name=config.model)


def score_lists(
    resources: ReferenceModel, examples: list, batch_size: int, append_eos: bool = True, share_prompt: bool = True
) -> list[tuple[list[float], list[int]]]:
    """Return ``(ref_logps, ref_n_tokens)`` for every response of every example, all lists batched together."""
    import torch

    from stages.train.logprobs import response_logprobs

    images, prompts, responses, owner = [], [], [], []
    for i, ex in enumerate(examples):
        image = ex.image()
        for text in ex.responses:
            images.append(image)
            prompts.append(ex.prompt)
            responses.append(text)
            owner.append(i)
    with torch.inference_mode():
        sums, counts = response_logprobs(
            resources.model, resources.processor, images, prompts, responses, batch_size, append_eos, share_prompt
        )
    out: list[tuple[list[float], list[int]]] = [([], []) for _ in examples]
    for i, s, n in zip(owner, sums.double().cpu().tolist(), counts.cpu().tolist()):
        out[i][0].append(s)
        out[i][1].append(int(n))
    return out


def run_shard(inputs: ShardInputs, output: ShardOutput, config: ReferenceConfig) -> ShardResult:
    """Fill ``ref_logps`` / ``ref_n_tokens`` of every listwise row of the shard; rows that cannot be scored are quarantined."""
    from stages.train.data import load_lists

    resources = inputs.resources if inputs.resources is not None else setup(config)
    examples, quarantine = load_lists(inputs.table("tasks"), inputs.table("listwise"))
    scores = score_lists(resources, examples, config.batch_size, config.append_eos, config.share_prompt)
    rows = []
    for ex, (logps, n_tokens) in zip(examples, scores):
        rows.append({**ex.row, "ref_logps": logps, "ref_n_tokens": n_tokens})
    n_responses = sum(len(ex.responses) for ex in examples)
    return ShardResult(
        tables={"listwise": validate_table(rows, "listwise")},
        quarantine=quarantine,
        metrics={"lists": float(len(rows)), "responses": float(n_responses)},
    )


SPEC = StageSpec(
    name="reference",
    config_cls=ReferenceConfig,
    reads=("tasks", "listwise"),
    writes=("listwise",),
    run_shard=run_shard,
    setup=setup,
    uses_model=True,
    description="Score every response of every list under the reference model (summed log-probs and token "
    "counts) so training needs no second model.",
)
