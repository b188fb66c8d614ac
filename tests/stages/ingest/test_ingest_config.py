"""The [ingest] config section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stages.ingest import CorpusFormat, IngestConfig


def test_defaults_are_the_demo_corpus():
    config = IngestConfig()
    assert config.format == CorpusFormat.DEMO and config.path is None and config.n_tasks == 48


def test_every_field_has_a_description():
    missing = [name for name, field in IngestConfig.model_fields.items() if name != "enabled" and not field.description]
    assert missing == []


@pytest.mark.parametrize("fmt", [f for f in CorpusFormat if f != CorpusFormat.DEMO])
def test_formats_other_than_demo_need_a_path(fmt):
    with pytest.raises(ValidationError, match=rf"\[ingest\] path is required for format = '{fmt.value}'"):
        IngestConfig(format=fmt)


def test_unknown_format_lists_the_available_ones():
    with pytest.raises(ValidationError, match=r"unknown \[ingest\] format 'webdataset'; available: demo, coco, jsonl, parquet"):
        IngestConfig(format="webdataset")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("detection_prompt", "Find it.", r"must contain the placeholder \{category\}"),
        ("detection_prompt", "Find {category} near {thing}.", r"may only use the placeholder \{category\}"),
        ("referring_prompt", "Box {category}.", r"must contain the placeholder \{expression\}"),
    ],
)
def test_prompt_templates_need_their_placeholder(field, value, match):
    with pytest.raises(ValidationError, match=match):
        IngestConfig(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("shard_size", 0), ("max_pixels", 0), ("n_tasks", 0), ("jpeg_quality", 101)])
def test_out_of_range_numbers_are_rejected(field, value):
    with pytest.raises(ValidationError, match=field):
        IngestConfig(**{field: value})


def test_unknown_keys_are_errors():
    with pytest.raises(ValidationError, match="image_dir"):
        IngestConfig(image_dir="x")


def test_box_layout_reads_under_its_old_name_too():
    assert IngestConfig.model_validate({"box_layout": "xywh"}).box_layout == "xywh"
    assert IngestConfig.model_validate({"box_format": "xywh"}).box_layout == "xywh"  # the key's name before
    with pytest.raises(ValidationError, match="'xyxy' or 'xywh'"):
        IngestConfig.model_validate({"box_layout": "cxcywh"})
