"""The vLLM reference backend: request building, log-prob extraction and the stage run against a fake engine.

The fake engine mimics vLLM's ``LLM.generate`` on token prompts: it expands the image placeholder
into many image tokens (as vLLM's multimodal processor does) and returns ``prompt_logprobs`` aligned
with ``prompt_token_ids`` (None first, then ``{token_id: Logprob}`` with a distractor top-1 token).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from tests.stages.reference.test_reference_stage import _tables

from stages.lib.errors import ModelError
from stages.base import ShardInputs, ShardOutput
from stages.reference import ReferenceConfig, run_shard, setup
from stages.vlm.vllm_scorer import (
    SCORING_PARAMS,
    ScoringError,
    VLLMReferenceModel,
    build_reference_requests,
    response_logprob_from_output,
    score_triples_vllm,
)
from stages.vlm.logprobs import response_logprobs, tokenize_triples

RESPONSES = ["red", " a red square", "", "[1, 2, 3]", "two\nlines, ünïcode", "</s> inside"]


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


def _logprob(token_id: int) -> float:
    return -((token_id % 7) + 1) / 10


def _output(token_ids: list[int], distractor: int = 99_999) -> SimpleNamespace:
    """A RequestOutput look-alike: None at position 0, then the actual token plus a top-1 distractor."""
    logprobs = [None] + [
        {distractor: SimpleNamespace(logprob=-0.01, rank=1), t: SimpleNamespace(logprob=_logprob(t), rank=5)}
        for t in token_ids[1:]
    ]
    return SimpleNamespace(prompt_token_ids=token_ids, prompt_logprobs=logprobs, outputs=[])


class FakeLLM:
    """``generate`` like vLLM on token prompts: each image placeholder becomes ``n_image_tokens`` tokens.

    Rejects the whole call with ValueError when any expanded prompt is longer than ``max_model_len``
    or holds a token of ``refuse``.
    """

    def __init__(self, image_token_id: int, n_image_tokens: int = 64, max_model_len: int = 10_000, refuse=()) -> None:
        self.image_token_id, self.n_image_tokens, self.max_model_len = image_token_id, n_image_tokens, max_model_len
        self.refuse = set(refuse)
        self.calls: list[int] = []

    def generate(self, prompts, sampling_params, use_tqdm=False):
        self.calls.append(len(prompts))
        assert sampling_params == SCORING_PARAMS and use_tqdm is False
        outputs = []
        for p in prompts:
            ids: list[int] = []
            for t in p["prompt_token_ids"]:
                images = self.n_image_tokens if t == self.image_token_id and "multi_modal_data" in p else 1
                ids += [t] * images
            if len(ids) > self.max_model_len:
                raise ValueError(f"The decoder prompt (length {len(ids)}) is longer than the maximum model length")
            if self.refuse & set(ids):
                raise ValueError(f"refused token in {ids}")
            outputs.append(_output(ids))
        return outputs


def _engine(processor, **kwargs) -> VLLMReferenceModel:
    llm = FakeLLM(processor.tokenizer.convert_tokens_to_ids(processor.image_token), **kwargs)
    return VLLMReferenceModel(llm=llm, processor=processor, name="fake", sampling_params=SCORING_PARAMS)


# -- extraction --------------------------------------------------------------------------------------


def test_extraction_sums_the_last_tokens_actual_logprobs():
    ids = [5, 3, 3, 3, 205, 435, 288, 2]
    total, n = response_logprob_from_output(_output(ids), 3, [435, 288, 2])
    assert n == 3 and total == pytest.approx(_logprob(435) + _logprob(288) + _logprob(2))
    assert response_logprob_from_output(_output(ids), 0) == (0.0, 0)


def test_extraction_reads_flat_logprobs_style_mappings():
    # FlatLogprobs (flat_logprobs=True) indexes to the same {token_id: Logprob} dict per position.
    class Flat(list):
        pass

    out = _output([1, 2, 3])
    out.prompt_logprobs = Flat(out.prompt_logprobs)
    assert response_logprob_from_output(out, 2)[0] == pytest.approx(_logprob(2) + _logprob(3))


@pytest.mark.parametrize(
    ("mutate", "n", "match"),
    [
        (lambda o: setattr(o, "prompt_logprobs", None), 1, "no prompt_logprobs"),
        (lambda o: o.prompt_logprobs.pop(), 1, "4 prompt log-probs for 5 prompt tokens"),
        (lambda o: None, 5, "a response needs a prompt before it"),
        (lambda o: o.prompt_logprobs.__setitem__(4, {1: SimpleNamespace(logprob=-1.0)}), 1, "no log-prob for token 7"),
        (lambda o: o.prompt_logprobs.__setitem__(3, None), 2, "no log-prob for token 6 at prompt position 3"),
    ],
)
def test_extraction_rejects_malformed_outputs(mutate, n, match):
    out = _output([1, 2, 5, 6, 7])
    mutate(out)
    with pytest.raises(ModelError, match=match):
        response_logprob_from_output(out, n)


def test_extraction_rejects_a_tail_that_is_not_the_response():
    with pytest.raises(ModelError, match=r"not the response \[8, 7\]"):
        response_logprob_from_output(_output([1, 2, 5, 6, 7]), 2, [8, 7])


# -- requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("append_eos", [True, False])
def test_requests_score_exactly_the_hf_token_sequence(processor, append_eos):
    image = Image.new("RGB", (64, 64), (255, 0, 0))
    prompts = ["What colour is the shape?"] * 3 + ["Describe the image."] * (len(RESPONSES) - 3)
    triples = [(image, p, r) for p, r in zip(prompts, RESPONSES)]
    requests = build_reference_requests(triples, processor, append_eos)
    hf = tokenize_triples(processor, [image] * len(triples), prompts, RESPONSES, append_eos)
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    for i, request in enumerate(requests):
        assert request.prompt["multi_modal_data"] == {"image": image}
        assert request.prompt["multi_modal_data"]["image"] is image
        assert len(request.response_ids) == int(hf["response_mask"][i].sum())  # the hf path's n_tokens
        hf_ids = hf["input_ids"][i][hf["attention_mask"][i].bool()].tolist()
        n_image = hf_ids.count(image_id)
        assert n_image > 1 and request.prompt["prompt_token_ids"].count(image_id) == 1
        expanded = [t for tok in request.prompt["prompt_token_ids"] for t in ([tok] * n_image if tok == image_id else [tok])]
        assert expanded == hf_ids  # prompt + response + EOS, token for token
        assert expanded[len(expanded) - len(request.response_ids) :] == request.response_ids  # the tail rule
    assert (requests[2].response_ids == [processor.tokenizer.eos_token_id]) is append_eos


def test_text_only_triples_have_no_image_and_match_hf(processor):
    triples = [(None, "Rewrite: a cat.", "a dog"), (None, "Rewrite: a cat.", "")]
    requests = build_reference_requests(triples, processor)
    hf = tokenize_triples(processor, [None, None], [t[1] for t in triples], [t[2] for t in triples])
    for i, request in enumerate(requests):
        assert "multi_modal_data" not in request.prompt
        assert request.prompt["prompt_token_ids"] == hf["input_ids"][i][hf["attention_mask"][i].bool()].tolist()
    assert build_reference_requests([], processor) == []


def test_requests_score_stored_token_ids_as_they_are(processor):
    image = Image.new("RGB", (64, 64), (255, 0, 0))
    sampled = [5, 6, 7, processor.tokenizer.eos_token_id]
    (given, written) = build_reference_requests(
        [(image, "Where?", "ignored text", sampled), (image, "Where?", "see <image> here", None)], processor
    )
    assert given.response_ids == sampled and given.prompt["prompt_token_ids"][-4:] == sampled
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    assert image_id not in written.response_ids  # a literal "<image>" in a written answer is text


# -- scoring against the fake engine -----------------------------------------------------------------


def test_scores_are_response_logprobs_in_one_call(processor):
    resources = _engine(processor)
    image = Image.new("RGB", (64, 64))
    triples = [(image, "What colour?", r) for r in RESPONSES]
    scores = score_triples_vllm(resources, triples)
    assert resources.llm.calls == [len(triples)]
    for request, (total, n) in zip(build_reference_requests(triples, processor), scores):
        assert n == len(request.response_ids) and total == pytest.approx(sum(map(_logprob, request.response_ids)))
    assert score_triples_vllm(resources, []) == []


def test_a_rejected_request_fails_alone(processor):
    resources = _engine(processor, max_model_len=90)
    image = Image.new("RGB", (64, 64))
    triples = [(image, "What colour?", "red"), (image, "What colour?", "a very long answer " * 10), (None, "Hi", "ok")]
    scores = score_triples_vllm(resources, triples)
    assert resources.llm.calls == [3, 1, 1, 1]  # the batch, then one by one
    assert isinstance(scores[1], ScoringError) and "longer than the maximum model length" in scores[1].message
    assert scores[1].message.startswith("ValueError: ")
    requests = build_reference_requests(triples, processor)
    assert [scores[0], scores[2]] == [
        pytest.approx((sum(map(_logprob, r.response_ids)), len(r.response_ids))) for r in (requests[0], requests[2])
    ]


def test_run_shard_with_vllm_backend_matches_hf_counts_and_quarantines_refusals(processor, tiny_model_dir, tmp_path):
    tasks, listwise = _tables()
    config = ReferenceConfig(engine={"backend": "vllm", "model": str(tiny_model_dir)})
    square = processor.tokenizer("a red square", add_special_tokens=False)["input_ids"][-1]
    resources = _engine(processor, refuse=[square])  # the engine refuses "a red square" of list "a"
    result = run_shard(ShardInputs({"tasks": tasks, "listwise": listwise}, resources), ShardOutput("reference", 0, tmp_path), config)
    (row,) = result.tables["listwise"].to_pylist()
    assert row["task_id"] == "b" and (result.metrics["lists"], result.metrics["responses"]) == (1.0, 2.0)
    assert result.metrics["reused_responses"] == 0.0  # no [sample] linked: every response is scored
    assert [(q["row_ref"], q["reason"]) for q in result.quarantine] == [("missing", "unknown_task"), ("a", "scoring_failed")]
    hf = ReferenceConfig(engine={"model": str(tiny_model_dir), "device": "cpu"})
    hf_model = setup(hf)
    image = Image.new("RGB", (64, 64), (0, 0, 255))
    with torch.no_grad():
        _, counts = response_logprobs(hf_model.model, hf_model.processor, [image] * 2, [row["prompt"]] * 2, row["responses"])
    assert row["ref_n_tokens"] == counts.tolist()
    ids = [r.response_ids for r in build_reference_requests([(image, row["prompt"], t) for t in row["responses"]], processor)]
    assert row["ref_logps"] == pytest.approx([sum(map(_logprob, r)) for r in ids])


def test_vllm_setup_without_vllm_raises_the_install_command(monkeypatch, tiny_model_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"pip install 'perpo-pipeline\[vllm\]'"):
        setup(ReferenceConfig(engine={"backend": "vllm", "model": str(tiny_model_dir)}))


# -- the real engine -----------------------------------------------------------------------------


@pytest.mark.gpu
def test_vllm_reference_logprobs_match_hf_on_gpu(tiny_model_dir, tmp_path):
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    tasks, listwise = _tables()
    inputs = {"tasks": tasks, "listwise": listwise}
    out = ShardOutput("reference", 0, tmp_path)
    cpu = ReferenceConfig(model=str(tiny_model_dir), device="cpu", dtype="float32")
    gpu = ReferenceConfig(backend="vllm", model=str(tiny_model_dir), max_model_len=512, gpu_memory_utilization=0.2)
    expected = run_shard(ShardInputs(inputs, setup(cpu)), out, cpu).tables["listwise"].to_pylist()
    got = run_shard(ShardInputs(inputs, setup(gpu)), out, gpu).tables["listwise"].to_pylist()
    assert [r["task_id"] for r in got] == [r["task_id"] for r in expected]
    for g, e in zip(got, expected):
        assert g["ref_n_tokens"] == e["ref_n_tokens"]
        for lg, le, n in zip(g["ref_logps"], e["ref_logps"], e["ref_n_tokens"]):
            assert lg == pytest.approx(le, abs=0.05 * n)  # vLLM runs bf16/fp16, hf float32 here
