"""The ordered list of stages. The runner, the config loader and the CLI all read it."""

from __future__ import annotations

import importlib
from functools import lru_cache

from stages.base import StageSpec

__all__ = ["STAGE_MODULES", "stage_specs", "stage_names", "get_stage"]

# Order is the data flow. Each module exposes SPEC: StageSpec.
STAGE_MODULES: tuple[str, ...] = (
    "stages.ingest",
    "stages.sample",
    "stages.perturb",
    "stages.score",
    "stages.rank",
    "stages.reference",
    "stages.train",
    "stages.eval",
)


@lru_cache(maxsize=1)
def stage_specs() -> tuple[StageSpec, ...]:
    """Return every stage's spec in data-flow order (modules whose import fails are a bug, not skipped)."""
    return tuple(importlib.import_module(m).SPEC for m in STAGE_MODULES)


def stage_names() -> tuple[str, ...]:
    """Return the stage names in data-flow order."""
    from stages import registry  # late lookup so tests can substitute stage_specs

    return tuple(s.name for s in registry.stage_specs())


def get_stage(name: str) -> StageSpec:
    """Return the spec of stage ``name``; raises ``KeyError`` listing the available stages."""
    from stages import registry

    for spec in registry.stage_specs():
        if spec.name == name:
            return spec
    raise KeyError(f"unknown stage {name!r}; available: {', '.join(registry.stage_names())}")
