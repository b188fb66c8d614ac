"""The one loss registry: every name has an entry, the objective implements each, docs list each."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.train.config import TrainConfig
from stages.train.loss_registry import LOSSES, LossName, loss_spec, losses_markdown

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_name_has_one_entry_and_an_implementation():
    from stages.train.objective import ON_LISTS

    assert list(LOSSES) == list(LossName) and all(spec.name is name for name, spec in LOSSES.items())
    assert set(ON_LISTS) == set(LOSSES)


@pytest.mark.parametrize("name", list(LOSSES))
def test_each_entry_cites_a_source_and_says_why_when_not_as_published(name):
    spec = LOSSES[name]
    assert spec.source and spec.compares and spec.default_beta > 0
    assert spec.published or spec.note  # "ours" always says how


def test_config_docs_and_readme_read_the_registry():
    description = TrainConfig.model_fields["loss"].description
    assert all(f"{spec.name}: {spec.compares}" in description for spec in LOSSES.values())
    assert losses_markdown() in README.read_text(encoding="utf-8"), "regenerate README's loss table from losses_markdown()"


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown loss 'orpo'; available: dpo, ipo"):
        loss_spec("orpo")
    assert loss_spec("dpo") is LOSSES[LossName.DPO]
