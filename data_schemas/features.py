"""Hugging Face ``datasets`` feature descriptions derived from Arrow schemas.

``datasets`` reads the ``huggingface`` key of an Arrow schema's metadata (and a dataset card's
``dataset_info.features``) to know that a ``{bytes, path}`` struct is an image. Fields named in
``image_fields`` (or lists of them) become ``Image`` features; everything else maps to ``Value``/``List``.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from data_schemas.images import IMAGE_STRUCT

__all__ = ["hf_features", "with_hf_metadata"]

_VALUE_DTYPES = {
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.binary(): "binary",
    pa.bool_(): "bool",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.float32(): "float32",
    pa.float64(): "float64",
}


def _feature(dtype: pa.DataType) -> dict[str, Any]:
    if dtype == IMAGE_STRUCT:
        return {"_type": "Image"}
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return {"_type": "List", "feature": _feature(dtype.value_type)}
    if pa.types.is_struct(dtype):
        return {f.name: _feature(f.type) for f in dtype}
    if dtype in _VALUE_DTYPES:
        return {"_type": "Value", "dtype": _VALUE_DTYPES[dtype]}
    raise TypeError(f"no datasets feature for Arrow type {dtype}")


def hf_features(schema: pa.Schema) -> dict[str, Any]:
    """Return the ``datasets`` features dict (as ``Features.to_dict()`` would) for ``schema``.

    Every ``{bytes: binary, path: string}`` struct, alone or inside a list, becomes an ``Image``.
    """
    return {f.name: _feature(f.type) for f in schema}


def with_hf_metadata(schema: pa.Schema) -> pa.Schema:
    """Return ``schema`` with the ``huggingface`` metadata key that makes ``datasets`` decode images."""
    meta = dict(schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": hf_features(schema)}}).encode()
    return schema.with_metadata(meta)
