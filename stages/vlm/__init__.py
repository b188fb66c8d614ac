"""The engine layer: one home for running VLMs, used by every model stage (sample, perturb, reference, eval, train).

- :mod:`~stages.vlm.engine_config`: :class:`EngineConfig` (the ``[<stage>.engine]`` table), ``Backend``.
- :mod:`~stages.vlm.load`: ``load_vlm(engine, stage)``, the one transformers loader (errors name the stage).
- :mod:`~stages.vlm.engines`: ``make_sampler`` over the :data:`BACKENDS` registry
  (:mod:`~stages.vlm.hf_engine`, :mod:`~stages.vlm.vllm_engine`), the request/result types in
  :mod:`~stages.vlm.requests`, per-sequence seeds (:mod:`~stages.vlm.seeds`), decoding (:mod:`~stages.vlm.decode`).
- :mod:`~stages.vlm.chat`: the prompt format every stage renders.
- :mod:`~stages.vlm.tokens`: ``response_token_ids``, the one tokenisation of responses.
- :mod:`~stages.vlm.logprobs` (hf) and :mod:`~stages.vlm.vllm_scorer` (vllm): summed response log-probs.
- :mod:`~stages.vlm.isolate`: ``serve_isolating``, the one "batch, then isolate the bad item / halve on OOM" helper.

Nothing here imports torch, transformers or vllm at import time; the package imports no submodule,
so importing one does not load the others.
"""
