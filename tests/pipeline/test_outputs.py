"""What the run's outputs say about it (pipeline/outputs.py): the dataset card's facts."""

from __future__ import annotations

from pipeline.config import load_config
from pipeline.outputs import _card_info


def test_the_card_names_a_local_model_by_its_folder_name_only(tmp_path):
    """A local path (user names, mount points) never reaches a card that may be published (issue 11, item 12)."""
    local = tmp_path / "home" / "alice" / "secret-project" / "tiny-vlm"
    local.mkdir(parents=True)
    info = _card_info(load_config(None, [f"sample.engine.model={local}/"]), {}, tmp_path / "report")
    assert info["model"] == "tiny-vlm"
    hub_id = ["sample.engine.model=Qwen/Qwen2.5-VL-7B-Instruct", "sample.family=qwen2_5_vl"]  # no Hub lookup offline
    info = _card_info(load_config(None, hub_id), {}, tmp_path / "report")
    assert info["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
