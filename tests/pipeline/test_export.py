"""Tests of the Hub-ready export: card, Parquet layout, round trip through `datasets`, TRL's vision DPO collator."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from data_schemas.images import encode_image_cell
from data_schemas.tables import validate_table
from stages.lib.errors import ConfigError, PublishError, SchemaError
from pipeline.export import CONFIGS, DEFAULT_CONFIG, EXPORT_SCHEMAS, export_dataset, yaml_features
from stages.base import ShardInputs, ShardOutput
from stages.rank import SPEC as RANK, RankConfig

COLOURS = {"t0": (255, 0, 0), "t1": (0, 255, 0), "t2": (0, 0, 255), "t3": (200, 200, 0)}


def _png(colour: tuple[int, int, int], size: int = 24) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def _run_tables() -> dict[str, pa.Table]:
    """A small run: four tasks with images, scored candidates, ranked by the real rank stage."""
    types = {"t0": "grounding", "t1": "ocr", "t2": "vqa", "t3": "caption"}
    tasks = validate_table(
        [
            {
                "task_id": tid, "task_type": ttype, "image": encode_image_cell(_png(COLOURS[tid]), f"{tid}.png"),
                "image_sha256": "0" * 64, "width": 24, "height": 24, "prompt": f"What is in image {tid}?",
                "answer": None, "boxes": None, "answers": None, "choices": None, "source": None, "meta": None,
            }
            for tid, ttype in types.items()
        ],
        "tasks",
    )
    scored_rows = []
    for tid in ("t0", "t1", "t2"):
        for i, reward in enumerate((1.0, 0.6, 0.3, 0.0)):
            scored_rows.append((tid, f"{tid}-{i}", "policy", f"answer {i} for {tid}", reward))
    scored_rows += [("t3", "t3-gt", "ground_truth", "a yellow square", None), ("t3", "t3-h", "hallucination", "a cat", None)]
    nulls = ("finish_reason", "model", "sample_index", "seed", "sampling", "distortion", "reward_kind", "parse_ok", "detail")
    scored = validate_table(
        [
            {"task_id": t, "cand_id": c, "origin": o, "text": x, "reward": r, "logprob_sum": -1.5, "n_tokens": 4} | dict.fromkeys(nulls)
            for t, c, o, x, r in scored_rows
        ],
        "scored",
    )
    out = ShardOutput(stage="rank", index=0, scratch_dir=Path("/unused"))
    result = RANK.run_shard(ShardInputs({"tasks": tasks, "scored": scored}), out, RankConfig(pairs_mode="best_vs_each"))
    return {"tasks": tasks, **result.tables}


@pytest.fixture(scope="module")
def run_tables() -> dict[str, pa.Table]:
    return _run_tables()


@pytest.fixture(scope="module")
def exported(run_tables, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    plot = root / "reward_hist.png"
    plot.write_bytes(_png((1, 2, 3)))
    card = {"repo_id": "me/perpo-demo", "model": "tiny-vlm", "N": 4, "rewards": {"grounding": "iou"},
            "perturbations": ["hallucination"], "counts": {"tasks": 4}, "license": "cc-by-4.0", "plots": [plot]}
    return export_dataset(run_tables, root / "hub", card)


@pytest.fixture(scope="module")
def ds_cache(tmp_path_factory) -> str:
    """A datasets cache inside the test's temporary folder (never ~/.cache)."""
    return str(tmp_path_factory.mktemp("datasets-cache"))


def _front_matter(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_folder_layout_and_parquet_metadata(exported, run_tables):
    files = sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file())
    assert files == ["README.md", *(f"data/{c}/train-00000-of-00001.parquet" for c in sorted(CONFIGS)), "plots/reward_hist.png"]
    for config in CONFIGS:
        pf = pq.ParquetFile(exported / "data" / config / "train-00000-of-00001.parquet")
        assert pf.schema_arrow.metadata[b"huggingface"] == EXPORT_SCHEMAS[config].metadata[b"huggingface"]
        assert pf.metadata.num_rows == run_tables[config].num_rows
    assert not list(exported.parent.glob(".hub.*"))  # no temporary folders left behind


def test_card_front_matter(exported, run_tables):
    meta = _front_matter(exported)
    assert meta["license"] == "cc-by-4.0"
    assert "image-text-to-text" in meta["task_categories"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(configs) == set(CONFIGS) and configs[DEFAULT_CONFIG]["default"] is True
    assert configs["pairs"]["data_files"] == [{"split": "train", "path": "data/pairs/train-*.parquet"}]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    images = next(f for f in infos["pairs"]["features"] if f["name"] == "images")
    assert images == {"name": "images", "list": "image"}  # datasets' YAML shorthand for List(Image())
    (split,) = infos["listwise"]["splits"]
    assert split["name"] == "train" and split["num_examples"] == run_tables["listwise"].num_rows and split["num_bytes"] > 0
    body = (exported / "README.md").read_text()
    assert 'load_dataset("me/perpo-demo", "pairs", split="train")' in body
    assert "![reward_hist](plots/reward_hist.png)" in body and "`tiny-vlm`" in body


@pytest.mark.parametrize("config", CONFIGS)
def test_yaml_features_match_datasets(config):
    from datasets import Features

    from data_schemas.features import hf_features

    schema = EXPORT_SCHEMAS[config]
    assert yaml_features(schema) == Features.from_dict(hf_features(schema))._to_yaml_list()


@pytest.mark.parametrize("config", CONFIGS)
def test_round_trip_through_load_dataset(exported, run_tables, ds_cache, config):
    from datasets import load_dataset
    from PIL import Image

    ds = load_dataset(str(exported), config, split="train", cache_dir=ds_cache)
    source = run_tables[config].to_pylist()
    assert len(ds) == len(source) > 0
    for row, src in zip(ds, source):
        assert row["task_id"] == src["task_id"]
        (image,) = row["images"]
        assert isinstance(image, Image.Image) and image.size == (24, 24)
        assert image.convert("RGB").getpixel((0, 0)) == COLOURS[src["task_id"]]
        assert row["prompt"] == [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": src["prompt"]}]}]
    if config == "pairs":
        assert ds[0]["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": source[0]["chosen"]}]}]
        assert ds[0]["margin"] == pytest.approx(source[0]["margin"])
    if config == "listwise":
        caption = next(r for r in ds if r["task_type"] == "caption")
        assert caption["rewards"] is None and caption["responses"] == ["a yellow square", "a cat"]


@pytest.mark.parametrize("config", CONFIGS)
def test_card_split_info_is_read_by_datasets_without_warning(exported, run_tables, config, caplog):
    """datasets warns "Ignoring part of dataset_info" on every load of a card whose splits lack num_bytes."""
    import logging

    from datasets.info import DatasetInfosDict
    from datasets.utils import logging as datasets_logging
    from huggingface_hub import DatasetCard

    datasets_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="datasets"):
            infos = DatasetInfosDict.from_dataset_card_data(DatasetCard.load(exported / "README.md").data)
    finally:
        datasets_logging.disable_propagation()
    assert not [r for r in caplog.records if "dataset_info" in r.getMessage()]
    assert infos[config].splits["train"].num_examples == run_tables[config].num_rows


def test_default_config_is_pairs(exported, ds_cache):
    from datasets import load_dataset

    assert "chosen" in load_dataset(str(exported), split="train", cache_dir=ds_cache).column_names


def test_pairs_pass_through_trl_vision_collator(exported, tiny_model_dir, ds_cache):
    """TRL's own preprocessing for vision DPO (the collator DPOTrainer uses for VLMs), then one forward pass."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    pairs = load_dataset(str(exported), "pairs", split="train", cache_dir=ds_cache)
    examples = [dict(pairs[i]) for i in range(3)]
    batch = DataCollatorForVisionPreference(processor)(examples)
    assert batch["input_ids"].shape[0] == 6  # chosen and rejected of 3 rows
    assert batch["completion_mask"].sum() > 0 and batch["pixel_values"].shape[0] == 6
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"])
    assert out.logits.shape[:2] == batch["input_ids"].shape


def test_reexport_replaces_previous_export(run_tables, tmp_path):
    first = export_dataset(run_tables, tmp_path / "hub", {})
    (first / "data" / "stale.parquet").write_bytes(b"old")
    again = export_dataset(run_tables, tmp_path / "hub", {"license": "mit"})
    assert not (again / "data" / "stale.parquet").exists()
    assert _front_matter(again)["license"] == "mit"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


def test_export_refuses_to_overwrite_another_folder(run_tables, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"exists and is not a previous export"):
        export_dataset(run_tables, tmp_path / "mine", {})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_export_rejects_unknown_card_keys(run_tables, tmp_path):
    with pytest.raises(ConfigError, match=r"card_info.colour: Extra inputs are not permitted"):
        export_dataset(run_tables, tmp_path / "hub", {"colour": "red"})


def test_export_with_no_lists_raises(run_tables, tmp_path):
    empty = {"tasks": run_tables["tasks"], "listwise": run_tables["listwise"].slice(0, 0)}
    with pytest.raises(PublishError, match=r"nothing to export"):
        export_dataset(empty, tmp_path / "hub", {})
    assert not (tmp_path / "hub").exists()


def test_export_skips_empty_configs(run_tables, tmp_path):
    folder = export_dataset({"tasks": run_tables["tasks"], "listwise": run_tables["listwise"]}, tmp_path / "hub", {})
    assert [c["config_name"] for c in _front_matter(folder)["configs"]] == ["listwise"]
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["listwise"]


def test_export_names_missing_tasks(run_tables, tmp_path):
    tasks = run_tables["tasks"].filter(pa.compute.not_equal(run_tables["tasks"]["task_id"], "t1"))
    with pytest.raises(SchemaError, match=r"absent from tasks \(first: 't1'\)"):
        export_dataset({**run_tables, "tasks": tasks}, tmp_path / "hub", {})


def test_large_exports_are_sharded(run_tables, tmp_path, ds_cache):
    from datasets import load_dataset

    folder = export_dataset(run_tables, tmp_path / "hub", {}, max_shard_bytes=400)  # listwise is ~1.5 kB: 4 shards
    shards = sorted((folder / "data" / "listwise").iterdir())
    assert len(shards) == run_tables["listwise"].num_rows and shards[0].name == f"train-00000-of-{len(shards):05d}.parquet"
    assert sum(pq.ParquetFile(s).metadata.num_rows for s in shards) == run_tables["listwise"].num_rows
    loaded = load_dataset(str(folder), "listwise", split="train", cache_dir=ds_cache)
    assert loaded["task_id"] == run_tables["listwise"]["task_id"].to_pylist()
