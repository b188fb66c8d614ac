"""The ``pipeline.toml`` reference, generated from the config models' field descriptions."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

__all__ = ["config_reference_markdown"]


def _default_text(field: Any, instance: BaseModel | None = None, key: str = "") -> str:
    if instance is not None:  # a nested table whose owner gives it other defaults ([reference.engine] batch_size)
        value = getattr(instance, key)
    elif field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(table)"
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # a StrEnum member
        value = value.value
    if isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    try:
        return json.dumps(value, default=str)
    except TypeError:
        return str(value)


def _section(name: str, model: type[BaseModel], lines: list[str], prefix: str = "", instance: BaseModel | None = None,
             intro: str = "") -> None:
    lines.append(f"### `[{prefix}{name}]`")
    text = " ".join(part for part in (intro, " ".join((model.__doc__ or "").split())) if part)
    if text:
        lines.append("")
        lines.append(text)
    lines.append("")
    lines.append("| key | default | description |")
    lines.append("|---|---|---|")
    nested = []
    for key, field in model.model_fields.items():
        if field.exclude:  # filled in by the loader, not a key of the file
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            default = field.default_factory() if field.default_factory is not None else None
            own = field.description if field.description and field.description != annotation.__doc__ else ""
            nested.append((key, annotation, default if isinstance(default, BaseModel) else None, own))
            continue
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{key}` | `{_default_text(field, instance, key)}` | {desc} |")
    lines.append("")
    for key, sub, default, own in nested:
        _section(key, sub, lines, prefix=f"{prefix}{name}.", instance=default, intro=" ".join(own.split()))


def config_reference_markdown() -> str:
    """Return Markdown documenting every section and key of pipeline.toml with default and description."""
    from pipeline.config import pipeline_config_cls

    cls = pipeline_config_cls()
    lines: list[str] = []
    for name, field in cls.model_fields.items():
        _section(name, field.annotation, lines)
    from pipeline.presets import presets_markdown

    return "\n".join(lines) + "\n" + presets_markdown()
