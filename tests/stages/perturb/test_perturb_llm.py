"""LLM-mode injection: outputs are checked, retried, and replaced by the rule injector (and the row says so)."""

from __future__ import annotations

from string import Template

import pytest
from perturb_helpers import ScriptedSampler

from data_schemas import TASK_TYPES
from prompts import available_prompts, load_prompt
from stages.perturb.injectors import InjectContext, InjectorKind
from stages.perturb.llm_inject import (
    KIND_INSTRUCTIONS,
    LlmJob,
    build_llm_prompt,
    clean_llm_output,
    llm_hallucinate,
    template_for,
)

ALL = list(InjectorKind)


def _job(key: str, answer: str, task_type: str = "caption", group: str = "t1") -> LlmJob:
    return LlmJob(key=key, group=group, question="Describe the image.", answer=answer,
                  ctx=InjectContext(task_type=task_type, width=64, height=64), seed=5)


def test_templates_exist_and_fill_for_every_task_type():
    assert {"hallucination", "hallucination_grounding", "hallucination_ocr"} <= set(available_prompts())
    for task_type in TASK_TYPES:
        job = _job("k", "[1, 2, 3, 4]" if task_type == "grounding" else "A red dog.", task_type)
        prompt = build_llm_prompt(job, ALL)
        assert "Describe the image." in prompt and job.answer in prompt and "$" not in prompt
        Template(load_prompt(template_for(task_type))).substitute(question="q", answer="a", error_kinds="e")


def test_prompt_lists_only_configured_kinds():
    prompt = build_llm_prompt(_job("k", "A red dog."), [InjectorKind.COLOR])
    assert KIND_INSTRUCTIONS[InjectorKind.COLOR] in prompt
    assert KIND_INSTRUCTIONS[InjectorKind.OBJECT] not in prompt


def test_load_prompt_unknown_name():
    with pytest.raises(FileNotFoundError, match="no prompt template 'nope'; available: hallucination"):
        load_prompt("nope")


@pytest.mark.parametrize(
    ("raw", "task_type", "clean"),
    [
        ("Rewritten answer: A cat.", "caption", "A cat."),
        ('"no"', "vqa", "no"),
        ("[1, 2, 3, 4]\nThis box is wrong because...", "grounding", "[1, 2, 3, 4]"),
        ("  HELL0\nW0RLD ", "ocr", "HELL0\nW0RLD"),
    ],
)
def test_clean_llm_output(raw, task_type, clean):
    assert clean_llm_output(raw, task_type) == clean


def test_noise_falls_back_to_rules_after_k_attempts():
    sampler = ScriptedSampler(lambda req, i: "zz qq [[ ]] ## ")
    jobs = [_job("t1:h:0", "A white dog on the left of a bench."), _job("t1:h:1", "A white dog on the left of a bench.")]
    out = llm_hallucinate(jobs, sampler, kinds=ALL, retries=3)
    assert sampler.calls == 3 and len(sampler.requests) == 6
    assert [o.mode for o in out] == ["rule_fallback", "rule_fallback"]
    assert all(o.attempts == 3 and o.fallback is not None and o.text == o.fallback.text for o in out)
    assert out[0].text != out[1].text  # distinct within the task
    assert sum(out[0].rejections.values()) == 3


def test_valid_output_is_accepted_and_retries_stop():
    replies = iter(["A white dog on the left of a bench.", "A black dog on the left of a bench."])
    sampler = ScriptedSampler(lambda req, i: next(replies))
    [out] = llm_hallucinate([_job("t1:h:0", "A white dog on the left of a bench.")], sampler, kinds=ALL, retries=3)
    assert (out.mode, out.attempts, out.text) == ("llm", 2, "A black dog on the left of a bench.")
    assert out.rejections == {"same_as_answer": 1}


def test_duplicates_within_a_task_are_rejected():
    sampler = ScriptedSampler(lambda req, i: "A black dog.")
    jobs = [_job("t1:h:0", "A white dog."), _job("t1:h:1", "A white dog.")]
    first, second = llm_hallucinate(jobs, sampler, kinds=ALL, retries=2)
    assert first.mode == "llm" and first.text == "A black dog."
    assert second.mode == "rule_fallback" and second.rejections == {"duplicate": 2}


def test_request_errors_count_and_fall_back():
    sampler = ScriptedSampler(fail_ids={"t1:h:0"})
    [out] = llm_hallucinate([_job("t1:h:0", "2", "vqa")], sampler, kinds=ALL, retries=2)
    assert out.mode == "rule_fallback" and out.rejections == {"request_error": 2}


def test_tiny_model_output_is_noise_so_rows_fall_back(tiny_model_dir):
    from stages.vlm.hf_engine import HFSampler

    sampler = HFSampler(tiny_model_dir, device="cpu", batch_size=4)
    jobs = [
        _job("g:h:0", "[4, 6, 30, 28]", "grounding", group="g"),
        _job("g:h:1", "[4, 6, 30, 28]", "grounding", group="g"),
        _job("v:h:0", "A white dog on the left of a red bench.", "caption", group="v"),
    ]
    out = llm_hallucinate(jobs, sampler, kinds=ALL, retries=2, max_tokens=12)
    assert [o.attempts for o in out] == [2, 2, 2]
    assert all(o.mode == "rule_fallback" and o.fallback is not None for o in out)
    assert all(sum(o.rejections.values()) == 2 for o in out)
    assert len({o.text for o in out[:2]}) == 2
