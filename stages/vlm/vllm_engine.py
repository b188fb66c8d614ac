"""The vLLM backend (GPU, production): one ``vllm.LLM`` engine per actor, all ``n`` samples kept.

Requests become ``{"prompt": <chat-templated text>, "multi_modal_data": {"image": PIL}}`` with one
``SamplingParams(n, temperature, top_p, max_tokens, seed, logprobs=0)`` each; ``logprobs=0`` makes
vLLM return the sampled token's log-prob so ``cumulative_logprob`` is filled (raw model
log-probs, before temperature and top-p: the same quantity the hf backend reports). vLLM is
imported only when a :class:`VLLMSampler` is built. Ray Data's LLM processor keeps only
``outputs[0]`` when ``n > 1``; calling ``LLM.generate`` directly keeps all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import ModelError, first_line
from stages.vlm.inputs import profile_of, render_family_prompt
from stages.vlm.decode import ResponseDecoder
from stages.vlm.engine_config import Backend, EngineConfig
from stages.vlm.isolate import Rejected, serve_isolating
from stages.vlm.load import check_model_source
from stages.vlm.requests import SampledText, SampleRequest, SampleResult
from stages.vlm.shared import engine_identity, shared

__all__ = ["VLLMSampler", "import_vllm", "build_vllm_inputs", "result_from_vllm_output", "VLLM_INSTALL_HINT"]

VLLM_INSTALL_HINT = "pip install 'perpo-pipeline[vllm]'"


def import_vllm():
    """Return the ``vllm`` module, or raise ImportError with the install command."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(f"the vllm sampling backend needs vLLM (a CUDA GPU); install it with: {VLLM_INSTALL_HINT}") from exc
    return vllm


def build_vllm_inputs(requests: list[SampleRequest], processor: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(prompts, sampling_params_kwargs)`` for ``LLM.generate``, one entry per request, in order.

    Each prompt is ``{"prompt": str}`` plus ``"multi_modal_data": {"image": image}`` when the
    request has an image; the text is the model's chat template applied by ``processor``
    (:func:`stages.vlm.chat.render_prompt`). Each kwargs dict feeds ``vllm.SamplingParams``.
    Pure: no vLLM needed.
    """
    prompts: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    quirks = profile_of(processor).chat
    bos = getattr(getattr(processor, "tokenizer", processor), "bos_token", None)
    for r in requests:
        text = render_family_prompt(processor, r.prompt, r.image is not None, quirks)
        if bos and text.startswith(bos):  # vLLM tokenizes a text prompt with special tokens: it adds BOS itself
            text = text[len(bos):]
        entry: dict[str, Any] = {"prompt": text}
        if r.image is not None:
            entry["multi_modal_data"] = {"image": r.image}
        prompts.append(entry)
        params.append(
            {
                "n": r.n,
                "temperature": r.temperature,
                "top_p": r.top_p,
                "max_tokens": r.max_tokens,
                "seed": r.seed,
                "logprobs": 0,  # only the sampled token's log-prob, enough for cumulative_logprob
            }
        )
    return prompts, params


_FINISH_REASONS = {"stop": "stop", "length": "length"}


def result_from_vllm_output(request_id: str, output: Any, decoder: ResponseDecoder | None = None) -> SampleResult:
    """Turn one ``vllm.RequestOutput`` into a :class:`SampleResult` keeping every ``CompletionOutput``.

    ``token_ids`` are ``CompletionOutput.token_ids`` (EOS included when emitted), ``n_tokens`` their count, ``logprob_sum`` is
    ``cumulative_logprob``; a finish reason other than stop/length (e.g. abort) is kept as is. With
    a ``decoder`` that keeps the family's box tokens the text is decoded from ``token_ids`` by it
    (vLLM's own text has skipped every special token); otherwise vLLM's text is used.
    """
    outputs = [
        SampledText(
            text=decoder.decode(c.token_ids) if decoder is not None and decoder.keeps_tokens else c.text,
            n_tokens=len(c.token_ids),
            logprob_sum=None if c.cumulative_logprob is None else float(c.cumulative_logprob),
            finish_reason=_FINISH_REASONS.get(str(c.finish_reason), str(c.finish_reason)),
            token_ids=tuple(int(t) for t in c.token_ids),  # CompletionOutput.token_ids: what reference and train score
        )
        for c in sorted(output.outputs, key=lambda c: c.index)
    ]
    return SampleResult(request_id=request_id, outputs=outputs)


def _request_error_reason(exc: BaseException, prompt: dict[str, Any]) -> QuarantineReason:
    """Why vLLM refused one request. Its input validation says "... is longer than the maximum model length
    of N" for a prompt that leaves no room in ``max_model_len`` (vllm tests/v1/e2e/test_context_length.py)."""
    if "maximum model length" in str(exc):
        return QuarantineReason.PROMPT_TOO_LONG
    return QuarantineReason.IMAGE_REJECTED if "multi_modal_data" in prompt else QuarantineReason.GENERATION_FAILED


class VLLMSampler:
    """A vLLM engine sampling all requests of a call in one ``LLM.generate`` (vLLM batches internally).

    If the engine rejects the batch (one bad image makes the whole call fail), the requests are
    retried one by one and only the rejected ones get an error.
    """

    backend = "vllm"
    decoder: ResponseDecoder | None = None  # set by __init__; None: vLLM's own text (no kept tokens)

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        limit_mm_per_prompt: int = 1,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        dtype: str = "auto",
        keep_tokens: str = "",
        stage: str = "sample",
    ) -> None:
        vllm = import_vllm()
        from transformers import AutoProcessor

        self.model_name = str(model_name_or_path)
        check_model_source(self.model_name, stage)
        self._sampling_params_cls = vllm.SamplingParams
        engine_args: dict[str, Any] = {
            "model": self.model_name,
            "tensor_parallel_size": tensor_parallel_size,
            "limit_mm_per_prompt": {"image": limit_mm_per_prompt},
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            "dtype": dtype,
        }
        if max_model_len is not None:
            engine_args["max_model_len"] = max_model_len

        def load() -> tuple[Any, Any]:
            try:
                processor = AutoProcessor.from_pretrained(self.model_name)
            except (OSError, ValueError) as exc:
                raise ModelError(
                    f"[{stage}] cannot load the processor of {self.model_name!r}: {first_line(exc, with_type=False)}"
                ) from exc
            try:
                return processor, vllm.LLM(**engine_args)
            except (OSError, ValueError) as exc:
                raise ModelError(f"[{stage}] vLLM cannot load {self.model_name!r}: {first_line(exc, with_type=False)}") from exc

        # one engine per process for every stage with these settings (stages.vlm.shared); the seed is not
        # part of the key: every request carries its own
        identity = engine_identity(EngineConfig.model_construct(
            backend=Backend.VLLM, model=self.model_name, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt=limit_mm_per_prompt,
        ))
        self.processor, self.llm = shared(identity, load)
        self.decoder = ResponseDecoder(self.processor.tokenizer, keep_tokens)

    @classmethod
    def from_config(cls, config: Any, seed: int = 0, keep_tokens: str = "", stage: str = "sample") -> "VLLMSampler":
        """Build the engine from an :class:`~stages.vlm.engine_config.EngineConfig` (``model``, ``dtype``, the vllm fields)."""
        return cls(
            config.model,
            stage=stage,
            tensor_parallel_size=config.tensor_parallel_size,
            max_model_len=config.max_model_len,
            limit_mm_per_prompt=getattr(config, "limit_mm_per_prompt", 1),
            gpu_memory_utilization=config.gpu_memory_utilization,
            seed=seed,
            dtype=config.dtype,
            keep_tokens=keep_tokens,
        )

    def _generate(self, prompts: list[dict[str, Any]], params: list[dict[str, Any]]):
        sampling = [self._sampling_params_cls(**kw) for kw in params]
        return self.llm.generate(prompts, sampling_params=sampling, use_tqdm=False)

    def sample(self, requests: list[SampleRequest]) -> list[SampleResult]:
        """Return one result per request, in order, with all ``n`` completions of each."""
        if not requests:
            return []
        prompts, params = build_vllm_inputs(requests, self.processor)

        def run(batch: list[tuple[SampleRequest, dict[str, Any], dict[str, Any]]]) -> list[SampleResult]:
            try:
                outputs = self._generate([p for _, p, _ in batch], [kw for _, _, kw in batch])
            except (ValueError, TypeError) as exc:  # input validation failed for some request: the helper finds which
                reason = _request_error_reason(exc, batch[0][1]) if len(batch) == 1 else QuarantineReason.IMAGE_REJECTED
                raise Rejected(reason, first_line(exc)) from exc
            return [result_from_vllm_output(r.request_id, o, self.decoder) for (r, _, _), o in zip(batch, outputs)]

        return serve_isolating(
            list(zip(requests, prompts, params)),
            run,
            lambda item, reason, message: SampleResult.failed(item[0].request_id, QuarantineReason(reason), message),
            reject_reason=QuarantineReason.IMAGE_REJECTED,
        )
