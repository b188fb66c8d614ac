"""Image distortions: a registry name -> (parameter model, builder), each run seeded and reproducible.

``diffusion`` is POVID's forward-diffusion noise (:mod:`stages.perturb.noise`); the others are
albumentations 2.0.x presets (GaussNoise, GaussianBlur, ImageCompression, Downscale, CoarseDropout)
applied with ``p=1`` inside a ``Compose`` whose seed is set before every image, so
(name, params, seed) reproduces the distorted image exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stages.lib.errors import ConfigError

__all__ = [
    "DistortionName",
    "DistortionInfo",
    "DISTORTIONS",
    "DistortionSpec",
    "resolve_params",
    "build_distortion",
    "apply_distortion",
]

Distort = Callable[[np.ndarray, int], np.ndarray]


class DistortionName(StrEnum):
    """Registered distortions (config ``perturb.distortion.distortions[].name``)."""

    DIFFUSION = "diffusion"
    GAUSS_NOISE = "gauss_noise"
    BLUR = "blur"
    JPEG = "jpeg"
    DOWNSCALE = "downscale"
    COARSE_DROPOUT = "coarse_dropout"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "_Params":
        for name, value in self:
            if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
                raise ValueError(f"{name}={list(value)}: the low end must not exceed the high end")
        return self


class DiffusionParams(_Params):
    t: int = Field(500, ge=0, description="Diffusion step (0-based index into the schedule); POVID uses 500 of 1000.")
    num_steps: int = Field(1000, ge=2, description="Length T of the beta schedule.")
    beta_start: float = Field(1e-5, gt=0, lt=1, description="Smallest beta of the sigmoid schedule.")
    beta_end: float = Field(5e-3, gt=0, lt=1, description="Largest beta of the sigmoid schedule.")

    @model_validator(mode="after")
    def _t_in_schedule(self) -> "DiffusionParams":
        if self.t >= self.num_steps:
            raise ValueError(f"t={self.t} must be below num_steps={self.num_steps}")
        return self


class GaussNoiseParams(_Params):
    std_range: tuple[float, float] = Field((0.1, 0.2), description="Noise std as a fraction of 255, drawn per image.")
    mean_range: tuple[float, float] = Field((0.0, 0.0), description="Noise mean as a fraction of 255.")
    per_channel: bool = Field(True, description="Independent noise per colour channel.")


class BlurParams(_Params):
    blur_limit: tuple[int, int] = Field((5, 9), description="Gaussian kernel size range (odd sizes).")
    sigma_limit: tuple[float, float] = Field((1.5, 3.0), description="Gaussian sigma range in pixels.")


class JpegParams(_Params):
    quality_range: tuple[int, int] = Field((5, 15), description="JPEG quality range (1-100, lower is worse).")


class DownscaleParams(_Params):
    scale_range: tuple[float, float] = Field((0.2, 0.3), description="Downscale factor range before upscaling back.")


class CoarseDropoutParams(_Params):
    num_holes_range: tuple[int, int] = Field((4, 8), description="How many rectangles to erase.")
    hole_height_range: tuple[float, float] = Field((0.08, 0.2), description="Hole height as a fraction of the image.")
    hole_width_range: tuple[float, float] = Field((0.08, 0.2), description="Hole width as a fraction of the image.")
    fill: float = Field(0, description="Fill value of the holes (0-255).")


def _albumentations():
    # albumentations pings PyPI for updates on import unless told not to; runs are offline
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    return A


def _albu_builder(make: Callable[[Any, Any], Any]) -> Callable[[BaseModel], Distort]:
    def build(params: BaseModel) -> Distort:
        A = _albumentations()
        compose = A.Compose([make(A, params)], p=1.0, seed=0)

        def apply(image: np.ndarray, seed: int) -> np.ndarray:
            compose.set_random_seed(seed)
            return compose(image=image)["image"]

        return apply

    return build


def _build_diffusion(params: BaseModel) -> Distort:
    from stages.perturb.noise import diffusion_noise

    p: DiffusionParams = params  # type: ignore[assignment]
    return lambda image, seed: diffusion_noise(image, p.t, seed, p.num_steps, p.beta_start, p.beta_end)


@dataclass(frozen=True)
class DistortionInfo:
    """A registry entry: its parameter model (defaults = the preset), its builder, a description."""

    params_cls: type[BaseModel]
    build: Callable[[BaseModel], Distort]
    description: str


DISTORTIONS: dict[DistortionName, DistortionInfo] = {
    DistortionName.DIFFUSION: DistortionInfo(
        DiffusionParams, _build_diffusion, "POVID forward-diffusion noise at step t (numpy)."
    ),
    DistortionName.GAUSS_NOISE: DistortionInfo(
        GaussNoiseParams,
        _albu_builder(
            lambda A, p: A.GaussNoise(std_range=p.std_range, mean_range=p.mean_range, per_channel=p.per_channel, p=1.0)
        ),
        "albumentations GaussNoise: additive Gaussian pixel noise.",
    ),
    DistortionName.BLUR: DistortionInfo(
        BlurParams,
        _albu_builder(lambda A, p: A.GaussianBlur(blur_limit=p.blur_limit, sigma_limit=p.sigma_limit, p=1.0)),
        "albumentations GaussianBlur.",
    ),
    DistortionName.JPEG: DistortionInfo(
        JpegParams,
        _albu_builder(lambda A, p: A.ImageCompression(compression_type="jpeg", quality_range=p.quality_range, p=1.0)),
        "albumentations ImageCompression (JPEG artefacts).",
    ),
    DistortionName.DOWNSCALE: DistortionInfo(
        DownscaleParams,
        _albu_builder(lambda A, p: A.Downscale(scale_range=p.scale_range, p=1.0)),
        "albumentations Downscale: shrink then upscale back (loss of detail).",
    ),
    DistortionName.COARSE_DROPOUT: DistortionInfo(
        CoarseDropoutParams,
        _albu_builder(
            lambda A, p: A.CoarseDropout(
                num_holes_range=p.num_holes_range,
                hole_height_range=p.hole_height_range,
                hole_width_range=p.hole_width_range,
                fill=p.fill,
                p=1.0,
            )
        ),
        "albumentations CoarseDropout: erase random rectangles.",
    ),
}


def resolve_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return ``params`` completed with the preset's defaults and validated (JSON-able).

    Raises :class:`ConfigError` naming the distortion, the bad key or value and the accepted keys.
    """
    name = str(name)
    try:
        info = DISTORTIONS[DistortionName(name)]
    except ValueError:
        raise ConfigError(f"unknown distortion {name!r}; available: {', '.join(DISTORTIONS)}") from None
    try:
        model = info.params_cls.model_validate(params or {})
    except ValidationError as exc:
        accepted = ", ".join(info.params_cls.model_fields)
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"distortion {name!r} params: {problems} (accepted keys: {accepted})") from None
    return model.model_dump(mode="json")


class DistortionSpec(BaseModel):
    """One configured distortion: a registry name, an optional label (unique per run) and its parameters."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: DistortionName = Field(description=f"Registry name: one of {', '.join(DistortionName)}.")
    label: str = Field("", description="Name used in cand_ids and the gallery; defaults to `name`.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Preset parameters; missing keys take the preset's defaults."
    )

    @model_validator(mode="after")
    def _resolve(self) -> "DistortionSpec":
        resolved = resolve_params(self.name, self.params)
        if resolved != self.params:
            object.__setattr__(self, "params", resolved)
        if not self.label:
            object.__setattr__(self, "label", self.name.value)
        if not self.label.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"label={self.label!r}: use letters, digits, '_' or '-' (it becomes part of cand_id)")
        return self


@lru_cache(maxsize=64)
def _cached_build(name: str, params_json: str) -> Distort:
    import json

    info = DISTORTIONS[DistortionName(name)]
    return info.build(info.params_cls.model_validate(json.loads(params_json)))


def build_distortion(name: str, params: dict[str, Any] | None = None) -> Distort:
    """Return ``apply(image_uint8_hwc, seed) -> image_uint8_hwc`` for a registered distortion (built once per process)."""
    import json

    resolved = resolve_params(name, params)
    return _cached_build(str(DistortionName(name)), json.dumps(resolved, sort_keys=True))


def apply_distortion(image: Any, spec: DistortionSpec, seed: int) -> np.ndarray:
    """Distort ``image`` (PIL image or uint8 HxWx3 array) with ``spec`` and ``seed``; returns a uint8 HxWx3 array."""
    array = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(f"expected a uint8 HxWxC image, got dtype {array.dtype} and shape {array.shape}")
    out = build_distortion(spec.name, spec.params)(np.ascontiguousarray(array), seed)
    return np.ascontiguousarray(out, dtype=np.uint8)
