"""The transformers backend: ``AutoModelForImageTextToText`` + ``AutoProcessor``, batched ``generate``; runs on CPU.

Reproducibility rule (hf): sample ``i`` of a request takes its uniforms (one per step) from a
``torch.Generator`` seeded with ``sequence_seed(request.seed, i)`` (see :mod:`stages.vlm.seeds`);
a logits processor does the sampling itself (temperature, top-p, inverse-CDF draw in vocabulary
order) and hands ``generate`` a one-hot distribution. Each sequence's randomness is therefore its own:
the same request gives the same samples whatever else is in its batch, the batch size, or an OOM
split. (Logits of a row can differ in the last float bits between batch shapes; a sample changes
only if its uniform draw falls within that distance of a token boundary.)

``logprob_sum`` is the sum over generated tokens (EOS included when emitted) of the model's
log-softmax at temperature 1, before top-p: the value a plain forward pass over prompt + response
gives, as the reference and train stages compute it and as vLLM's default raw log-probs report.
(Logits processors that ``generate_kwargs`` or the model's generation config add before ours,
e.g. ``min_new_tokens``, change the scores it sees; ``repetition_penalty`` is reset to 1.)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import ConfigError, ModelError, first_line
from stages.vlm.decode import ResponseDecoder
from stages.vlm.inputs import encode_prompts, placeholder_ids, profile_of
from stages.vlm.engine_config import EngineConfig
from stages.vlm.isolate import Rejected, serve_isolating
from stages.vlm.load import load_shared_vlm
from stages.vlm.requests import SampledText, SampleRequest, SampleResult
from stages.vlm.seeds import sequence_seed

__all__ = ["HFSampler", "is_oom_error", "context_length"]


# How allocators say they ran out: CUDA ("CUDA out of memory"), torch's CPU allocator ("DefaultCPUAllocator:
# can't allocate memory" on Linux, "not enough memory" on Windows; c10/core/impl/alloc_cpu.cpp).
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "not enough memory")


def is_oom_error(exc: BaseException) -> bool:
    """True for out-of-memory errors: ``MemoryError``, ``torch.cuda.OutOfMemoryError``, or a RuntimeError from
    the CUDA or CPU allocator saying so."""
    import torch

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES)


def context_length(model: Any) -> int | None:
    """The model's context in tokens (its text config's ``max_position_embeddings``), or None if it declares none."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(text, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def _seeded_sampling_processor(
    seeds: list[int], temperature: float, top_p: float, eos_ids: list[int], max_steps: int, banned: list[int] = ()
):
    """Build the logits processor that samples each row from its own generator and records log-probs."""
    import torch
    from transformers import LogitsProcessor

    class SeededSampling(LogitsProcessor):
        def __init__(self) -> None:
            # one uniform per (sequence, step), drawn up front from the sequence's own generator
            self.uniforms = torch.stack(
                [torch.rand(max_steps, generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in seeds]
            )
            self.step = 0
            self.eos = torch.tensor(sorted(set(eos_ids)), dtype=torch.long)
            self.logprob_sum = torch.zeros(len(seeds), dtype=torch.float64)
            self.n_tokens = torch.zeros(len(seeds), dtype=torch.long)
            self.finished = torch.zeros(len(seeds), dtype=torch.bool)
            self.banned = torch.tensor(sorted(set(banned)), dtype=torch.long)

        def _draw(self, logits: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
            banned = self.banned.to(logits.device)
            if temperature == 0:
                return (logits.index_fill(1, banned, -math.inf) if len(banned) else logits).argmax(dim=-1)
            # float32 over the vocabulary, like generate's own sampling: float64 doubles the memory
            # traffic of every pass and made sampling ~2x slower than generate at a 152k vocabulary.
            probs = logprobs.exp() if temperature == 1 else torch.softmax(logits / temperature, dim=-1)
            if len(banned):  # never draw an image placeholder: scoring the response would count it as an image slot
                probs = probs.index_fill_(1, banned, 0.0)
            if top_p < 1.0:
                sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
                drop_sorted = (sorted_p.cumsum(dim=-1) - sorted_p) >= top_p  # mass before it already covers top_p
                probs = probs.masked_fill(torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted), 0.0)
            cdf = probs.cumsum(dim=-1)  # vocabulary order: no dependence on sort ties
            u = self.uniforms[:, min(self.step, max_steps - 1)]
            target = u.to(device=cdf.device, dtype=cdf.dtype)[:, None] * cdf[:, -1:]
            return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp_(max=logits.shape[-1] - 1)

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            logits = scores.float()
            logprobs = torch.log_softmax(logits, dim=-1)  # of the untempered distribution: what the model assigns
            chosen = self._draw(logits, logprobs)
            step_logprob = logprobs.gather(1, chosen[:, None]).squeeze(1).double().cpu()
            active = ~self.finished
            self.logprob_sum += torch.where(active, step_logprob, torch.zeros_like(step_logprob))
            self.n_tokens += active.long()
            self.finished |= torch.isin(chosen.cpu(), self.eos)
            self.step += 1
            # generate decodes greedily (see HFSampler._generate): a row whose only finite score is
            # our token makes its argmax our draw. Written in place: no second vocabulary-sized tensor.
            return scores.fill_(-math.inf).scatter_(1, chosen[:, None], 0.0)

    return SeededSampling()


class HFSampler:
    """A transformers VLM that samples ``n`` sequences per request in batches of ``batch_size`` requests.

    Requests are grouped by (image or not, n, temperature, top_p, max_tokens) and each group is
    generated in chunks. A request whose image or prompt the processor rejects gets
    ``error_reason=image_rejected``; one whose encoded prompt (image tokens included) plus
    ``max_tokens`` exceeds the model's context gets ``prompt_too_long`` before anything is generated;
    a chunk that runs out of memory (GPU or CPU) is halved and retried down to one request, which
    then gets ``error_reason=oom``. ``generate_kwargs`` are extra
    ``GenerationConfig`` fields (e.g. ``min_new_tokens`` for benchmarks). ``keep_tokens`` (the
    family profile's) names the special tokens kept in the decoded text (:mod:`stages.vlm.decode`).
    """

    backend = "hf"

    def __init__(
        self,
        model_name_or_path: str | Path,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        generate_kwargs: dict[str, Any] | None = None,
        keep_tokens: str = "",
        stage: str = "sample",
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"[{stage}] engine.batch_size = {batch_size} must be at least 1")
        self.model_name = str(model_name_or_path)
        engine = EngineConfig.model_construct(model=self.model_name, device=device, dtype=dtype)  # checked by load_vlm
        self.model, self.processor = load_shared_vlm(engine, stage)  # one load for every stage on this engine
        self.device = self.model.device
        self.batch_size = batch_size
        self.generate_kwargs = dict(generate_kwargs or {})
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"  # generation appends on the right
        self.decoder = ResponseDecoder(self.tokenizer, keep_tokens)  # the family's box tokens survive decoding
        self.quirks = profile_of(self.processor, self.model).chat  # how this family's prompts are encoded
        eos = self.model.generation_config.eos_token_id
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(self.tokenizer.eos_token_id)
        if not eos_ids:
            raise ModelError(f"{self.model_name!r} defines no eos token (generation_config or tokenizer)")
        self.eos_ids = eos_ids
        self.placeholders = placeholder_ids(self.processor, self.model) - set(eos_ids)  # never sampled
        self.context = context_length(self.model)
        pad = self.model.generation_config.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos_ids[0])

    def sample(self, requests: list[SampleRequest]) -> list[SampleResult]:
        """Return one result per request, in order; see the class docstring for error handling."""
        results: list[SampleResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.image is not None, r.n, r.temperature, r.top_p, r.max_tokens), []).append(i)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, result in zip(chunk, self._serve([requests[i] for i in chunk])):
                    results[i] = result
        return results  # type: ignore[return-value]

    # -- one chunk: encode, generate, halve on OOM ------------------------------------------------

    def _encode(self, requests: list[SampleRequest]):
        """One processor batch with each request's row repeated ``n`` times (request-major), as generate's
        ``num_return_sequences`` would expand it, but through the processor so every family's image
        inputs expand correctly."""
        rows = [r for r in requests for _ in range(r.n)]
        batch = encode_prompts(self.processor, [r.image for r in rows], [r.prompt for r in rows], self.quirks)
        batch = batch.to(self.device)
        for key, value in batch.items():
            if hasattr(value, "is_floating_point") and value.is_floating_point():
                batch[key] = value.to(self.model.dtype)
        return batch

    def _serve(self, requests: list[SampleRequest]) -> list[SampleResult]:
        """Serve one chunk: a request the processor rejects alone fails with ``image_rejected``, an OOM halves
        the chunk (:func:`stages.vlm.isolate.serve_isolating`)."""
        return serve_isolating(
            requests,
            self._serve_batch,
            lambda r, reason, message: SampleResult.failed(r.request_id, QuarantineReason(reason), message),
            reject_reason=QuarantineReason.IMAGE_REJECTED,
            oom_reason=QuarantineReason.OOM,
            probe=lambda r: self._encode([r]),
            is_oom=is_oom_error,
            free_memory=self._free_memory,
        )

    def _serve_batch(self, requests: list[SampleRequest]) -> list[SampleResult]:
        try:
            batch = self._encode(requests)
        except Exception as exc:  # the processor refused something in this chunk: the helper finds which
            raise Rejected(QuarantineReason.IMAGE_REJECTED, first_line(exc)) from exc
        too_long = self._too_long(batch, requests)
        if too_long:
            return self._serve_others(requests, too_long)
        return self._generate(batch, requests)

    def _too_long(self, batch, requests: list[SampleRequest]) -> dict[int, SampleResult]:
        """Requests whose prompt leaves no room for ``max_tokens`` in the model's context (generating past
        ``max_position_embeddings`` is undefined for many models), by position in ``requests``."""
        if self.context is None:
            return {}
        row_lengths = batch["attention_mask"].sum(dim=1).tolist()  # request-major, n rows per request (_encode)
        starts = [0]
        for r in requests[:-1]:
            starts.append(starts[-1] + r.n)
        out = {}
        for i, (r, start) in enumerate(zip(requests, starts)):
            n = row_lengths[start]
            if n + r.max_tokens > self.context:
                message = (
                    f"prompt is {n} tokens (image included) + max_tokens {r.max_tokens}, over the model's "
                    f"context of {self.context} tokens"
                )
                out[i] = SampleResult.failed(r.request_id, QuarantineReason.PROMPT_TOO_LONG, message)
        return out

    def _serve_others(self, requests: list[SampleRequest], failed: dict[int, SampleResult]) -> list[SampleResult]:
        """Serve the requests not in ``failed`` together; return every result in request order."""
        good = [r for i, r in enumerate(requests) if i not in failed]
        served = iter(self._serve(good) if good else [])
        return [failed[i] if i in failed else next(served) for i in range(len(requests))]

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _generate(self, batch, requests: list[SampleRequest]) -> list[SampleResult]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        first = requests[0]
        n = first.n
        seeds = [sequence_seed(r.seed, j) for r in requests for j in range(n)]
        sampler = _seeded_sampling_processor(
            seeds, first.temperature, first.top_p, self.eos_ids, first.max_tokens, sorted(self.placeholders)
        )
        # Greedy decoding over rows that each request fills n times (see _encode): our processor makes
        # the draw, and generate's own multinomial pass over the vocabulary (the costliest step at a
        # real vocabulary size) never runs.
        config = GenerationConfig(
            max_new_tokens=first.max_tokens,
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,  # neutralise model defaults that would alter the raw logits
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            **self.generate_kwargs,
        )
        with torch.inference_mode():
            sequences = self.model.generate(
                **batch, generation_config=config, logits_processor=LogitsProcessorList([sampler])
            )
        generated = sequences[:, batch["input_ids"].shape[1] :].tolist()
        eos = set(self.eos_ids)
        results = []
        for ri, r in enumerate(requests):
            outputs = []
            for j in range(n):
                row = ri * n + j
                tokens = generated[row]
                stop = next((k for k, t in enumerate(tokens) if t in eos), None)
                kept = tokens if stop is None else tokens[: stop + 1]
                text_tokens = kept if stop is None else kept[:-1]
                outputs.append(
                    SampledText(
                        text=self.decoder.decode(text_tokens),
                        n_tokens=int(sampler.n_tokens[row]),
                        logprob_sum=float(sampler.logprob_sum[row]),
                        finish_reason="stop" if stop is not None else "length",
                        token_ids=tuple(kept),
                    )
                )
            results.append(SampleResult(request_id=r.request_id, outputs=outputs))
        return results
