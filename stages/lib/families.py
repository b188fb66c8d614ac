"""Model families: what the pipeline must know about a policy beyond its weights.

One registry keyed by transformers' ``model_type`` (the ``model_type`` of the model folder's
``config.json``), overridable with ``[sample] family``. A profile says:
- ``box_format``: how the family writes boxes (the default of ``[score] box_format``);
- ``candidate_format``: how the pipeline writes its own candidates (ground truth, hallucinations)
  for this family, so that they speak the policy's coordinate language;
- ``keep_tokens``: a regular expression matching the special tokens that carry boxes and must
  survive decoding (``""``: none);
- ``chat``: chat-template quirks of the family;
- ``lora_target_modules``: the default LoRA targets, language model only (as PerPO and POVID train).

A ``model_type`` not in the registry gets the ``generic`` profile: pixel candidates, ``auto``
parsing, no kept tokens: the pipeline's behaviour before families existed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from stages.lib.boxes.formats.names import BoxFormat
from stages.lib.errors import ConfigError, first_line

_log = logging.getLogger(__name__)

__all__ = [
    "ChatQuirks",
    "FamilyProfile",
    "FAMILIES",
    "GENERIC",
    "family_names",
    "get_family",
    "family_for_model_type",
    "model_type_of",
    "resolve_family",
    "profile_for",
    "FAMILY_FIELD_DOC",
    "checked_family",
]

FAMILY_FIELD_DOC = (
    "Model family of the policy (box format, how our candidates are written, tokens kept, LoRA targets): "
    "'' = the [sample] model's family, from its config.json model_type (unknown types: generic)."
)

_ATTN_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_BART_LIKE = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def _lm_only(prefix: str = "language_model", names: tuple[str, ...] = _ATTN_MLP) -> str:
    """A peft ``target_modules`` regex (peft full-matches a string) for the named linear layers
    under the language model only; transformers 5 VLMs keep the LM under ``model.<prefix>``."""
    return rf".*\.{prefix}\..*\.({'|'.join(names)})"


@dataclass(frozen=True)
class ChatQuirks:
    """How a family's prompt and response tokens differ from the plain chat-template path."""

    has_chat_template: bool = True  # PaliGemma checkpoints ship none: prompt is "<image>" * n + bos + prefix
    prefix_prompt: bool = False  # no template: the processor builds "<image>" * n + bos + prompt + "\n" (PaliGemma)
    template_writes_bos: bool = False  # the rendered template already starts with BOS: tokenize without specials
    turn_end: str | None = None  # token that ends an assistant turn, when it is not the tokenizer's eos
    response_token_type_ids: bool = False  # PaliGemma: token_type_ids 1 on the response (suffix)
    images_nested_per_prompt: bool = False  # processor wants [[img], [img]] for a batch
    notes: str = ""


@dataclass(frozen=True)
class FamilyProfile:
    """One model family (see the module doc for each field)."""

    name: str
    model_types: tuple[str, ...]
    box_format: BoxFormat
    candidate_format: BoxFormat
    keep_tokens: str = ""
    chat: ChatQuirks = field(default_factory=ChatQuirks)
    lora_target_modules: str = _lm_only()
    source: str = ""


_QWEN_TAGS = r"<\|(?:object_ref|box|quad)_(?:start|end)\|>"
_REF_BOX = r"</?(?:ref|box|quad)>"

GENERIC = FamilyProfile(
    "generic", (), BoxFormat.AUTO, BoxFormat.PIXEL, lora_target_modules=_lm_only("(?:language_model|text_model)"),
    source="no documented grounding format: pixel candidates and auto parsing (the pipeline's own convention)",
)

_PROFILES: tuple[FamilyProfile, ...] = (
    GENERIC,
    FamilyProfile("qwen2_vl", ("qwen2_vl",), BoxFormat.QWEN2_VL, BoxFormat.QWEN2_VL, _QWEN_TAGS,
                  source="Qwen2-VL tech report; grounding tags are special tokens of its tokenizer"),
    FamilyProfile("qwen2_5_vl", ("qwen2_5_vl",), BoxFormat.QWEN2_5_VL, BoxFormat.QWEN2_5_VL, _QWEN_TAGS,
                  source="QwenLM/Qwen2.5-VL spatial_understanding cookbook (JSON bbox_2d, absolute resized pixels)"),
    FamilyProfile("qwen3_vl", ("qwen3_vl", "qwen3_vl_moe"), BoxFormat.QWEN3_VL, BoxFormat.QWEN3_VL, _QWEN_TAGS,
                  source="QwenLM/Qwen3-VL README and ODinW-13 evaluation (JSON bbox_2d, 0-1000)"),
    FamilyProfile("internvl", ("internvl", "internvl_chat"), BoxFormat.INTERNVL, BoxFormat.INTERNVL, _REF_BOX,
                  source="OpenGVLab/InternVL refcoco evaluation (<ref>/<box>, 0-1000)"),
    FamilyProfile("llava", ("llava",), BoxFormat.LLAVA, BoxFormat.LLAVA,
                  source="haotian-liu/LLaVA (LLaVA-1.5 REC data: 0-1 of the padded square)"),
    FamilyProfile("llava_next", ("llava_next", "llava_onevision"), BoxFormat.AUTO, BoxFormat.PIXEL,
                  source="no documented box format for LLaVA-NeXT / OneVision found: generic (our choice)"),
    FamilyProfile("smolvlm", ("smolvlm", "idefics3"), BoxFormat.AUTO, BoxFormat.PIXEL,
                  chat=ChatQuirks(images_nested_per_prompt=True), lora_target_modules=_lm_only("text_model"),
                  source="no documented box format found: generic (our choice)"),
    FamilyProfile("gemma3", ("gemma3",), BoxFormat.AUTO, BoxFormat.PIXEL,
                  chat=ChatQuirks(template_writes_bos=True, turn_end="<end_of_turn>", images_nested_per_prompt=True),
                  source="no documented box format found (google/gemma-3-4b-it discussion #38): generic (our choice)"),
    FamilyProfile("mistral3", ("mistral3",), BoxFormat.AUTO, BoxFormat.PIXEL,
                  chat=ChatQuirks(template_writes_bos=True),
                  source="no documented box format found: generic (our choice)"),
    FamilyProfile("paligemma", ("paligemma",), BoxFormat.PALIGEMMA, BoxFormat.PALIGEMMA,
                  chat=ChatQuirks(has_chat_template=False, prefix_prompt=True, response_token_type_ids=True,
                                  notes="prompt 'detect <thing>' style prefixes; the <locNNNN> tokens are normal tokens"),
                  source="google-research/big_vision PaliGemma (1024 location tokens, y first)"),
    FamilyProfile("florence2", ("florence2",), BoxFormat.FLORENCE2, BoxFormat.FLORENCE2, r"<loc_\d+>",
                  chat=ChatQuirks(has_chat_template=False, notes="task prompts such as <OD>, <CAPTION_TO_PHRASE_GROUNDING>"),
                  lora_target_modules=_lm_only("language_model", _BART_LIKE),
                  source="transformers Florence2 processor (<loc_X> bins, decoded keeping special tokens)"),
    FamilyProfile("kosmos2", ("kosmos-2",), BoxFormat.KOSMOS2, BoxFormat.KOSMOS2,
                  chat=ChatQuirks(has_chat_template=False, notes="prompt starts with <grounding>"),
                  lora_target_modules=_lm_only("text_model", _BART_LIKE),
                  source="transformers Kosmos-2 processor (32 x 32 patch-index tokens, normal tokens)"),
    FamilyProfile("cogvlm", ("cogvlm",), BoxFormat.COGVLM, BoxFormat.COGVLM,
                  source="THUDM/CogVLM README (remote code; model_type as in its config.json)"),
    FamilyProfile("shikra", ("shikra",), BoxFormat.SHIKRA, BoxFormat.SHIKRA,
                  source="shikras/shikra box formatter (remote code)"),
    FamilyProfile("minicpm_v", ("minicpmv",), BoxFormat.MINICPM_V, BoxFormat.MINICPM_V, _REF_BOX,
                  source="OpenBMB/MiniCPM-V (<ref>/<box> special tokens; 0-1000 is our choice)"),
    FamilyProfile("deepseek_vl2", ("deepseek_vl_v2",), BoxFormat.DEEPSEEK_VL2, BoxFormat.DEEPSEEK_VL2,
                  r"<\|/?(?:ref|det)\|>|<\|grounding\|>",
                  source="deepseek-ai/DeepSeek-VL2 (remote code; special tokens added in processing_deepseek_vl_v2.py)"),
    FamilyProfile("molmo", ("molmo", "molmo2"), BoxFormat.MOLMO, BoxFormat.PIXEL,
                  source="allenai Molmo (points only: its grounding answers score 0; our candidates stay in pixels)"),
)

FAMILIES: dict[str, FamilyProfile] = {p.name: p for p in _PROFILES}
_BY_MODEL_TYPE: dict[str, FamilyProfile] = {mt: p for p in _PROFILES for mt in p.model_types}


def family_names() -> tuple[str, ...]:
    """The registry's family names (the values ``[sample] family`` accepts besides ``""``)."""
    return tuple(FAMILIES)


def get_family(name: str) -> FamilyProfile:
    """The profile named ``name``; :class:`ConfigError` listing the names otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; available: {', '.join(FAMILIES)}") from None


def checked_family(value: str) -> str:
    """``value`` when it is ``""`` or a family name; ``ValueError`` listing the names otherwise
    (for config validators)."""
    if value and value not in FAMILIES:
        raise ValueError(f"unknown model family {value!r}; available: '' (from the model), {', '.join(FAMILIES)}")
    return value


def family_for_model_type(model_type: str | None) -> FamilyProfile:
    """The profile of a transformers ``model_type``; :data:`GENERIC` for an unknown or missing one."""
    return _BY_MODEL_TYPE.get(model_type or "", GENERIC)


def _looks_like_hub_id(model: str) -> bool:
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith((".", "~")) and "\\" not in model


def model_type_of(model: str) -> str | None:
    """The ``model_type`` in the ``config.json`` of ``model`` (a local folder, or a Hub id read
    through the Hub cache, downloading only that file). ``None`` when ``model`` is neither an
    existing folder nor a Hub id, its config has no ``model_type``, or a Hub id's config cannot be
    read (offline, gated, no such repo: logged as a warning naming ``[sample] family``); the model
    stage then reports the model itself, and a later run reads the family again."""
    path = Path(model).expanduser()
    if path.is_dir():
        config = path / "config.json"
        try:
            return json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError):
            return None
    if path.exists() or not _looks_like_hub_id(model):
        return None
    try:
        from huggingface_hub import hf_hub_download

        with open(hf_hub_download(model, "config.json"), encoding="utf-8") as f:
            return json.load(f).get("model_type")
    except Exception as exc:  # network, auth, missing repo: all say the same thing to the user
        _log.warning(
            "cannot read the model_type of %r to pick its model family (%s); using 'generic' "
            "(set [sample] family to one of: %s)", model, first_line(exc), ", ".join(FAMILIES),
        )
        return None


def resolve_family(model: str, family: str = "") -> str:
    """The family name for a policy: ``family`` when set (checked), else the profile of the
    model's ``model_type`` (:func:`model_type_of`), ``generic`` when that is unknown."""
    if family:
        return get_family(family).name
    return family_for_model_type(model_type_of(model)).name


def profile_for(family: str, model: str = "") -> FamilyProfile:
    """The profile a stage works with: ``family`` when set, else that of ``model``'s ``model_type``,
    else :data:`GENERIC`. The pipeline fills ``family`` in every section from ``[sample]`` when the
    config is loaded, so a stage inside a run never reads the model's config itself."""
    if family:
        return get_family(family)
    return get_family(resolve_family(model)) if model else GENERIC
