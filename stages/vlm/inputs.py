"""Model inputs for prompts and responses, the way each family's own code builds them.

Every stage that runs a VLM (sampling, perturb's answers, reference log-probs, training) encodes its
prompts and its responses here, so all of them feed the model the same token sequence:

- the prompt is the chat template's rendering (:func:`stages.vlm.chat.render_prompt`), or, for
  a family whose checkpoints ship no template (PaliGemma), the processor's own prefix format;
- images go to the processor one list per prompt where the processor wants that (SmolVLM /
  Idefics3, Gemma 3: a flat list is read as all images of the first prompt);
- a rendered prompt that already starts with BOS is tokenized without special tokens, as
  transformers' ``apply_chat_template(tokenize=True)`` does (Gemma 3, Mistral 3 templates write BOS);
- the processor's ``labels`` (PaliGemma computes them from ``token_type_ids``) never reach the model;
- a response we wrote (ground truth, hallucination) is tokenized with special tokens split (a
  literal ``<image>`` in it is text, not an image slot) and ends with the token the model ends its
  turn with: the family's ``turn_end`` (Gemma 3's ``<end_of_turn>``), else the first of the
  generation config's eos ids, else the tokenizer's eos. A sampled response is scored on the token
  ids it was generated as (stored with the candidate), never re-tokenized.

The quirks come from the family registry (:mod:`stages.lib.families`), looked up by the model's
``model_type`` or, for a processor alone, by its class.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from stages.lib.families import GENERIC, ChatQuirks, FamilyProfile, family_for_model_type

__all__ = [
    "profile_of",
    "render_family_prompt",
    "encode_prompts",
    "turn_end_id",
    "written_response_ids",
    "response_token_type",
    "placeholder_ids",
]


@lru_cache(maxsize=None)
def _profile_by_processor_class() -> dict[str, FamilyProfile]:
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    from stages.lib.families import FAMILIES

    found: dict[str, set[str]] = {}
    for profile in FAMILIES.values():
        for model_type in profile.model_types:
            cls = PROCESSOR_MAPPING_NAMES.get(model_type)
            if isinstance(cls, str):
                found.setdefault(cls, set()).add(profile.name)
    return {cls: FAMILIES[next(iter(names))] for cls, names in found.items() if len(names) == 1}


def _unwrap(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def profile_of(processor: Any, model: Any | None = None) -> FamilyProfile:
    """The family profile of a loaded model: by its ``model_type`` when ``model`` is given, else by
    the processor's class; :data:`~stages.lib.families.GENERIC` when neither is known."""
    if model is not None:
        model_type = getattr(getattr(_unwrap(model), "config", None), "model_type", None)
        profile = family_for_model_type(model_type)
        if profile is not GENERIC:
            return profile
    return _profile_by_processor_class().get(type(processor).__name__, GENERIC)


def _tokenizer(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def render_family_prompt(processor: Any, prompt: str, with_image: bool, quirks: ChatQuirks) -> str:
    """The prompt text the processor is given: the chat template's rendering, or for a family
    without one (PaliGemma) the image placeholder then the prompt, to which PaliGemmaProcessor adds
    BOS and the closing newline itself (transformers ``PaliGemmaProcessor.prepare_inputs_layout``)."""
    from stages.lib.errors import ModelError
    from stages.vlm.chat import render_prompt

    if not quirks.has_chat_template and getattr(processor, "chat_template", None) is None:
        if not quirks.prefix_prompt:
            raise ModelError(
                f"{type(processor).__name__} has no chat template and the pipeline has no prompt format for this "
                "family (its task prompts, e.g. <OD> or <grounding>, are not supported yet); use a chat model"
            )
        token = getattr(processor, "image_token", None) or "<image>"
        return f"{token}{prompt}" if with_image else prompt
    return render_prompt(processor, prompt, with_image=with_image)


def encode_prompts(
    processor: Any, images: Sequence[Any | None], prompts: Sequence[str], quirks: ChatQuirks, padding: bool = True
) -> Any:
    """One processor batch (torch tensors) for ``prompts`` with ``images`` (all given or all None),
    encoded as the family's own code does (see the module doc); never carries ``labels``."""
    with_image = images[0] is not None if images else False
    if any((img is not None) != with_image for img in images):
        raise ValueError("a batch mixes prompts with and without an image; group them first")
    texts = [render_family_prompt(processor, p, with_image, quirks) for p in prompts]
    tok = _tokenizer(processor)
    bos = getattr(tok, "bos_token", None)
    kwargs: dict[str, Any] = {"padding": padding, "return_tensors": "pt"}
    if bos and all(t.startswith(bos) for t in texts):
        kwargs["add_special_tokens"] = False  # the template wrote BOS: transformers' apply_chat_template does the same
    if with_image:
        batch_images = [[img] for img in images] if quirks.images_nested_per_prompt else list(images)
        enc = processor(text=texts, images=batch_images, **kwargs)
    else:
        enc = tok(texts, **kwargs)
    enc.pop("labels", None)
    return enc


def turn_end_id(processor: Any, model: Any | None = None, quirks: ChatQuirks | None = None) -> int | None:
    """The token id a response of this model ends with when it ends its turn (see the module doc)."""
    tok = _tokenizer(processor)
    quirks = quirks if quirks is not None else profile_of(processor, model).chat
    if quirks.turn_end:
        tid = tok.convert_tokens_to_ids(quirks.turn_end)
        if isinstance(tid, int) and tid != getattr(tok, "unk_token_id", None):
            return tid
    gen = getattr(_unwrap(model), "generation_config", None) if model is not None else None
    eos = getattr(gen, "eos_token_id", None)
    if isinstance(eos, (list, tuple)) and eos:
        return int(eos[0])
    if isinstance(eos, int):
        return eos
    return tok.eos_token_id


def written_response_ids(processor: Any, texts: Sequence[str], end_id: int | None) -> list[list[int]]:
    """Token ids of responses we wrote (not sampled): special tokens split, ``end_id`` appended when given."""
    tok = _tokenizer(processor)
    if not texts:
        return []
    try:
        ids = tok(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]
    except TypeError:  # a slow tokenizer without split_special_tokens
        ids = tok(list(texts), add_special_tokens=False)["input_ids"]
    tail = [end_id] if end_id is not None else []
    return [list(i) + tail for i in ids]


def response_token_type(quirks: ChatQuirks) -> int:
    """The ``token_type_ids`` value of response tokens: 1 for PaliGemma (its suffix), else 0."""
    return 1 if quirks.response_token_type_ids else 0


_PLACEHOLDER_ATTRS = ("image_token_id", "image_token_index", "video_token_id", "video_token_index", "audio_token_id")


def placeholder_ids(processor: Any, model: Any | None = None) -> frozenset[int]:
    """The token ids the model replaces with image (video, audio) features: a response must not hold
    one, or a forward pass over prompt + response counts more placeholders than there are images."""
    found: set[int] = set()
    sources = [processor, _tokenizer(processor)]
    if model is not None:
        config = getattr(_unwrap(model), "config", None)
        sources.append(config)
    for source in sources:
        for attr in _PLACEHOLDER_ATTRS:
            value = getattr(source, attr, None)
            if isinstance(value, int) and value >= 0:
                found.add(value)
    token = getattr(processor, "image_token", None)
    if isinstance(token, str):
        tid = _tokenizer(processor).convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != getattr(_tokenizer(processor), "unk_token_id", None):
            found.add(tid)
    return frozenset(found)
