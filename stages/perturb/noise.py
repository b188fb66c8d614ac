"""POVID's forward-diffusion image noise, in numpy.

POVID (arXiv 2402.11411; YiyangZhou/POVID ``llava/train/train_dpo_inherent.py``, ``add_diffusion_noise``)
noises the ``ToTensor`` image (values in [0, 1]) as
    x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps,  eps ~ N(0, 1),
    betas = sigmoid(linspace(-6, 6, T)) * (5e-3 - 1e-5) + 1e-5,  alpha_bar_t = prod_{s <= t} (1 - beta_s),
with T = 1000 and t = 500 used as a 0-based index (``alphas_bar_sqrt[t]`` after ``torch.cumprod``), so
alpha_bar_500 is the product of the first 501 factors. We keep that indexing. POVID converts back
with ``ToPILImage`` (which wraps out-of-range values around); we clamp to [0, 1] instead.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["povid_betas", "povid_alpha_bars", "q_sample", "diffusion_noise"]

NUM_STEPS = 1000
BETA_START = 1e-5
BETA_END = 5e-3


def povid_betas(num_steps: int = NUM_STEPS, beta_start: float = BETA_START, beta_end: float = BETA_END) -> np.ndarray:
    """Return POVID's sigmoid beta schedule (float64, length ``num_steps``)."""
    x = np.linspace(-6.0, 6.0, num_steps)
    return 1.0 / (1.0 + np.exp(-x)) * (beta_end - beta_start) + beta_start


def povid_alpha_bars(num_steps: int = NUM_STEPS, beta_start: float = BETA_START, beta_end: float = BETA_END) -> np.ndarray:
    """Return alpha_bar_t = prod_{s <= t} (1 - beta_s) for t = 0 .. num_steps - 1 (float64)."""
    return np.cumprod(1.0 - povid_betas(num_steps, beta_start, beta_end))


def q_sample(x0: np.ndarray, alpha_bar: float, noise: np.ndarray) -> np.ndarray:
    """Return sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * noise (no clamping; float32 in, float32 out)."""
    xt = x0 * math.sqrt(alpha_bar)  # python floats keep x0's dtype
    xt += noise * math.sqrt(1.0 - alpha_bar)
    return xt


def diffusion_noise(
    image: np.ndarray,
    t: int,
    seed: int,
    num_steps: int = NUM_STEPS,
    beta_start: float = BETA_START,
    beta_end: float = BETA_END,
) -> np.ndarray:
    """Noise a uint8 HxWxC image to diffusion step ``t`` (0-based) with a seeded N(0, 1); returns uint8.

    The image is scaled to [0, 1], noised with :func:`q_sample`, clamped to [0, 1] and rounded back.
    """
    if not 0 <= t < num_steps:
        raise ValueError(f"diffusion step t={t} is outside 0..{num_steps - 1}")
    alpha_bar = float(povid_alpha_bars(num_steps, beta_start, beta_end)[t])
    x0 = image.astype(np.float32) * np.float32(1.0 / 255.0)
    eps = np.random.default_rng(seed).standard_normal(x0.shape, dtype=np.float32)
    xt = q_sample(x0, alpha_bar, eps)
    np.clip(xt, 0.0, 1.0, out=xt)
    return np.rint(xt * 255.0).astype(np.uint8)
