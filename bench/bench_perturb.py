"""Perturb-stage throughput on one core: image distortions on 512x512 RGB, and rule hallucination injection.

Baselines, measured in the same run:
- diffusion: POVID's own path (``llava/train/train_dpo_inherent.py``): PIL -> ToTensor -> add_diffusion_noise
  (schedule rebuilt per call, torch.randn_like) -> ToPILImage, written with plain torch ops, versus
  ours: PIL -> numpy -> diffusion_noise (seeded numpy Generator, clamped) -> PIL.
- albumentations presets: the same transform called directly (``A.X(..., p=1)(image=...)``, unseeded)
  versus our seeded wrapper (``apply_distortion``: Compose + set_random_seed per image).
- context: decoding the 512x512 PNG (what the stage does before any distortion).

Run: ``.venv/bin/python bench/bench_perturb.py``
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from stages.perturb.distortions import DISTORTIONS, DistortionName, DistortionSpec, apply_distortion
from stages.perturb.hallucinate import rule_hallucinate
from stages.perturb.injectors import InjectContext, InjectorKind

SIZE = 512
N_IMAGES = 8
MIN_SECONDS = 1.5


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    out = []
    for i in range(N_IMAGES):
        base = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), np.sin(4 * (xx + yy))], axis=-1) * 0.5 + 0.5
        arr = np.clip(base * 255 + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(arr))
    return out


def _rate(fn, items) -> float:
    """Calls per second of ``fn(item)`` cycling over ``items`` for at least MIN_SECONDS (after one warm-up)."""
    fn(items[0])
    n, start = 0, time.perf_counter()
    while True:
        fn(items[n % len(items)])
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS and n >= len(items):
            return n / elapsed


def _povid_torch_noise(image: Image.Image, noise_step: int = 500) -> Image.Image:
    """POVID's add_diffusion_noise between ToTensor and ToPILImage, with plain torch ops (no torchvision)."""
    import torch

    x = torch.from_numpy(np.asarray(image)).permute(2, 0, 1).float().div(255)  # ToTensor
    betas = torch.sigmoid(torch.linspace(-6, 6, 1000)) * (0.5e-2 - 1e-5) + 1e-5
    alphas_prod = torch.cumprod(1 - betas, dim=0)
    xt = alphas_prod.sqrt()[noise_step] * x + (1 - alphas_prod).sqrt()[noise_step] * torch.randn_like(x)
    return Image.fromarray(xt.mul(255).byte().permute(1, 2, 0).numpy())  # ToPILImage (wraps, no clamp)


def _direct_albumentations(name: DistortionName, params: dict):
    import albumentations as A

    p = DISTORTIONS[name].params_cls.model_validate(params)
    transform = {
        DistortionName.GAUSS_NOISE: lambda: A.GaussNoise(std_range=p.std_range, mean_range=p.mean_range, p=1.0),
        DistortionName.BLUR: lambda: A.GaussianBlur(blur_limit=p.blur_limit, sigma_limit=p.sigma_limit, p=1.0),
        DistortionName.JPEG: lambda: A.ImageCompression(quality_range=p.quality_range, p=1.0),
        DistortionName.DOWNSCALE: lambda: A.Downscale(scale_range=p.scale_range, p=1.0),
        DistortionName.COARSE_DROPOUT: lambda: A.CoarseDropout(
            num_holes_range=p.num_holes_range, hole_height_range=p.hole_height_range,
            hole_width_range=p.hole_width_range, fill=p.fill, p=1.0,
        ),
    }[name]()
    return lambda img: Image.fromarray(transform(image=np.asarray(img))["image"])


def bench_distortions() -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    images = _images()
    pngs = []
    for img in images:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        pngs.append(buf.getvalue())
    decode = _rate(lambda data: Image.open(io.BytesIO(data)).convert("RGB").load(), pngs)
    print(f"# image distortions, {SIZE}x{SIZE} RGB, 1 thread (PIL in -> PIL out)")
    print(f"context: PNG decode {decode:8.1f} images/s")
    print(f"{'distortion':<16}{'ours img/s':>12}{'baseline img/s':>16}{'ours/baseline':>15}  baseline")
    seeds = iter(range(10**9))
    for name in DistortionName:
        spec = DistortionSpec(name=name)
        ours = _rate(lambda img: Image.fromarray(apply_distortion(img, spec, next(seeds))), images)
        if name == DistortionName.DIFFUSION:
            base, label = _rate(_povid_torch_noise, images), "POVID torch code"
        else:
            base, label = _rate(_direct_albumentations(name, spec.params), images), "albumentations direct"
        print(f"{name.value:<16}{ours:12.1f}{base:16.1f}{ours / base:15.2f}  {label}")


def bench_injection() -> None:
    samples = {
        "caption": "A white dog sits on the left of a red bench near two bicycles and 3 people under a tree.",
        "grounding": "[[12, 40, 200, 310], [220, 35, 480, 300]]",
        "ocr": "INVOICE No. 10583\nModern Clothing Co.\nTotal: 1,250.00",
        "vqa": "2",
    }
    print("\n# rule hallucination injection, 1 thread")
    print(f"{'task type':<12}{'injections/s':>14}")
    kinds = list(InjectorKind)
    for task_type, answer in samples.items():
        ctx = InjectContext(task_type=task_type, width=512, height=512)
        rate = _rate(lambda s: rule_hallucinate(answer, ctx, kinds, s), list(range(1000)))
        print(f"{task_type:<12}{rate:14.0f}")


if __name__ == "__main__":
    bench_distortions()
    bench_injection()
