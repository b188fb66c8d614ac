"""Prompt templates shipped with the package (``prompts/*.txt``), read through importlib.resources."""

from __future__ import annotations

from importlib import resources

__all__ = ["load_prompt", "available_prompts"]


def available_prompts() -> list[str]:
    """Return the names (file stems) of the bundled ``.txt`` templates, sorted."""
    return sorted(p.name[:-4] for p in resources.files(__name__).iterdir() if p.name.endswith(".txt"))


def load_prompt(name: str) -> str:
    """Return the text of template ``name`` (``"hallucination"`` or ``"hallucination.txt"``).

    Raises ``FileNotFoundError`` naming the bundled templates when there is no such file.
    """
    stem = name[:-4] if name.endswith(".txt") else name
    path = resources.files(__name__).joinpath(f"{stem}.txt")
    if not path.is_file():
        raise FileNotFoundError(f"no prompt template {stem!r}; available: {', '.join(available_prompts()) or 'none'}")
    return path.read_text(encoding="utf-8")
