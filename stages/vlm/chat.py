"""The one prompt format every stage uses: sampling, reference log-probs and training see the same text.

A task prompt becomes one user turn. With an image, its content is a list with one
``{"type": "image"}`` placeholder followed by the text (the conversational format of TRL's vision
preference rows); without one, the content is the plain string, which text-only chat templates
(an LLM used for hallucination injection) also accept. The model's own chat template, applied by
its processor or tokenizer, turns the messages into the prompt string. Keep these two functions
stable: changing them changes every log-prob the pipeline stores.
"""

from __future__ import annotations

from typing import Any

from stages.lib.errors import ModelError

__all__ = ["build_messages", "render_prompt"]


def build_messages(prompt: str, with_image: bool = True) -> list[dict[str, Any]]:
    """Return ``[{"role": "user", "content": ...}]`` for ``prompt``, with the image placeholder first when ``with_image``."""
    if with_image:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return [{"role": "user", "content": prompt}]


def render_prompt(processor: Any, prompt: str, with_image: bool = True) -> str:
    """Return the prompt string the model generates from: its chat template applied with ``add_generation_prompt=True``.

    ``processor`` is an ``AutoProcessor`` (or a tokenizer for text-only models); the result contains
    the model's image placeholder when ``with_image`` and ends where the assistant's answer starts.
    Raises :class:`ModelError` when the processor has no chat template.
    """
    try:
        return processor.apply_chat_template(
            build_messages(prompt, with_image), add_generation_prompt=True, tokenize=False
        )
    except ValueError as exc:
        if "chat template" in str(exc).lower() or "chat_template" in str(exc):
            name = getattr(processor, "name_or_path", None) or type(processor).__name__
            raise ModelError(
                f"model {name!r} has no chat template; use an instruction-tuned model or one whose processor defines one"
            ) from exc
        raise
