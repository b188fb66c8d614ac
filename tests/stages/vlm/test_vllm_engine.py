import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from data_schemas.quarantine import QuarantineReason
from stages.vlm.requests import SampleRequest
from stages.vlm.vllm_engine import VLLM_INSTALL_HINT, build_vllm_inputs, import_vllm, result_from_vllm_output


class _TemplateOnly:
    """A processor stand-in: only apply_chat_template, which is all build_vllm_inputs needs."""

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        content = messages[0]["content"]
        text = content if isinstance(content, str) else "".join(
            "<img>" if part["type"] == "image" else part["text"] for part in content
        )
        return f"USER: {text} ASSISTANT:" if add_generation_prompt else text


def test_inputs_carry_image_prompt_and_per_request_params():
    image = Image.new("RGB", (8, 8))
    requests = [
        SampleRequest("a", "What colour?", image, n=5, temperature=0.7, top_p=0.9, max_tokens=32, seed=11),
        SampleRequest("b", "Rewrite: a cat.", None, n=1, temperature=1.0, top_p=1.0, max_tokens=8, seed=12),
    ]
    prompts, params = build_vllm_inputs(requests, _TemplateOnly())
    assert prompts == [
        {"prompt": "USER: <img>What colour? ASSISTANT:", "multi_modal_data": {"image": image}},
        {"prompt": "USER: Rewrite: a cat. ASSISTANT:"},
    ]
    assert params[0] == {"n": 5, "temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "seed": 11, "logprobs": 0}
    assert params[1]["seed"] == 12 and params[1]["n"] == 1


def test_inputs_use_the_model_chat_template(tiny_sampler):
    image = Image.new("RGB", (8, 8))
    prompts, _ = build_vllm_inputs([SampleRequest("a", "What colour?", image)], tiny_sampler.processor)
    assert prompts[0]["prompt"] == "<|user|>\n<image>\nWhat colour?</s>\n<|assistant|>\n"


def _completion(index, text, token_ids, logprob, reason):
    return SimpleNamespace(index=index, text=text, token_ids=token_ids, cumulative_logprob=logprob, finish_reason=reason)


def test_result_keeps_all_n_outputs_in_index_order():
    output = SimpleNamespace(
        request_id="0",
        outputs=[
            _completion(1, "", [2], -0.5, "stop"),
            _completion(0, "[1, 2, 3, 4]", [5, 6, 7, 8], -3.25, "length"),
            _completion(2, "red", [9, 2], None, "abort"),
        ],
    )
    result = result_from_vllm_output("task:policy", output)
    assert result.request_id == "task:policy" and result.error is None
    assert [(o.text, o.n_tokens, o.logprob_sum, o.finish_reason) for o in result.outputs] == [
        ("[1, 2, 3, 4]", 4, -3.25, "length"),
        ("", 1, -0.5, "stop"),
        ("red", 2, None, "abort"),
    ]
    assert [o.token_ids for o in result.outputs] == [(5, 6, 7, 8), (2,), (9, 2)]  # what reference and train score


def test_prompt_over_max_model_len_is_prompt_too_long():
    """vLLM validates each request's length itself (ValueError, vllm tests/v1/e2e/test_context_length.py);
    that request is quarantined as prompt_too_long, the others are served (issue 11, item 1)."""
    from stages.vlm.vllm_engine import VLLMSampler

    class FakeEngine(VLLMSampler):
        def __init__(self):
            self.processor = _TemplateOnly()
            self.decoder = None  # text as vLLM decoded it

        def _generate(self, prompts, params):
            if any("long" in p["prompt"] for p in prompts):
                raise ValueError("The decoder prompt (length 80000) plus the number of requested output tokens "
                                 "(at least 1) is longer than the maximum model length of 32768.")
            return [SimpleNamespace(outputs=[_completion(0, "ok", [1], -1.0, "stop")]) for _ in prompts]

    image = Image.new("RGB", (8, 8))
    results = FakeEngine().sample([SampleRequest("a", "long " * 10, image), SampleRequest("b", "short", image)])
    assert results[0].error_reason == QuarantineReason.PROMPT_TOO_LONG and "32768" in results[0].error
    assert [o.text for o in results[1].outputs] == ["ok"]


def test_missing_vllm_raises_import_error_with_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"pip install 'perpo-pipeline\[vllm\]'"):
        import_vllm()
    assert "perpo-pipeline[vllm]" in VLLM_INSTALL_HINT


@pytest.mark.gpu
def test_vllm_samples_all_n_on_gpu(tiny_model_dir):
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    from stages.vlm.vllm_engine import VLLMSampler

    sampler = VLLMSampler(tiny_model_dir, max_model_len=512, gpu_memory_utilization=0.2)
    image = Image.new("RGB", (64, 64), (255, 0, 0))
    results = sampler.sample([SampleRequest("a", "What colour?", image, n=4, max_tokens=8, seed=3)])
    assert len(results[0].outputs) == 4
    assert all(o.logprob_sum is not None and o.logprob_sum <= 0 for o in results[0].outputs)
    again = sampler.sample([SampleRequest("a", "What colour?", image, n=4, max_tokens=8, seed=3)])
    assert [o.text for o in again[0].outputs] == [o.text for o in results[0].outputs]


def test_a_template_that_writes_bos_leaves_it_to_vllm(tiny_family_dir):
    """vLLM tokenizes a text prompt with special tokens: the BOS Gemma 3's template writes is dropped from the text."""
    from stages.vlm.engine_config import EngineConfig
    from stages.vlm.load import load_vlm

    _, processor = load_vlm(EngineConfig(model=str(tiny_family_dir("gemma3")), device="cpu"), "test")
    prompts, _ = build_vllm_inputs([SampleRequest("a", "What colour?", Image.new("RGB", (8, 8)))], processor)
    text = prompts[0]["prompt"]
    assert text.startswith("<start_of_turn>user\n") and processor.tokenizer.bos_token not in text
    assert processor.tokenizer(text)["input_ids"].count(processor.tokenizer.bos_token_id) == 1
