"""POVID's diffusion noise: the schedule matches the formula and POVID's torch code; noising is seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stages.perturb.noise import diffusion_noise, povid_alpha_bars, povid_betas, q_sample


def _beta(i: int, steps: int = 1000) -> float:
    x = -6.0 + 12.0 * i / (steps - 1)
    return 1.0 / (1.0 + math.exp(-x)) * (5e-3 - 1e-5) + 1e-5


def test_alpha_bar_500_matches_a_plain_python_product():
    expected = math.prod(1.0 - _beta(i) for i in range(501))  # 0-based t = 500: factors s = 0 .. 500
    assert povid_alpha_bars()[500] == pytest.approx(expected, rel=1e-12)
    assert 0.74 < expected < 0.75  # sanity: t = 500 keeps about 86% of the signal amplitude


def test_betas_match_the_formula_end_points():
    betas = povid_betas()
    assert betas.shape == (1000,)
    assert betas[0] == pytest.approx(_beta(0), rel=1e-12)
    assert betas[-1] == pytest.approx(_beta(999), rel=1e-12)
    assert np.all(np.diff(betas) > 0)


def test_schedule_matches_povid_torch_code():
    torch = pytest.importorskip("torch")
    # POVID llava/train/train_dpo_inherent.py add_diffusion_noise, float32 as there
    betas = torch.sigmoid(torch.linspace(-6, 6, 1000)) * (0.5e-2 - 1e-5) + 1e-5
    alphas_prod = torch.cumprod(1 - betas, dim=0)
    np.testing.assert_allclose(povid_alpha_bars(), alphas_prod.double().numpy(), rtol=1e-5)


def test_q_sample_is_the_formula():
    rng = np.random.default_rng(0)
    x0 = rng.random((4, 5, 3), dtype=np.float32)
    eps = rng.standard_normal((4, 5, 3), dtype=np.float32)
    a = float(povid_alpha_bars()[500])
    out = q_sample(x0, a, eps)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, math.sqrt(a) * x0 + math.sqrt(1 - a) * eps, rtol=1e-6)


def test_diffusion_noise_statistics_follow_alpha_bar():
    # a mid-grey image at a small t stays away from the clamp, so mean and std are the formula's
    t = 100
    a = float(povid_alpha_bars()[t])
    img = np.full((128, 128, 3), 128, dtype=np.uint8)
    out = diffusion_noise(img, t, seed=0).astype(np.float64) / 255.0
    x0 = 128 / 255
    assert out.mean() == pytest.approx(math.sqrt(a) * x0, abs=3e-3)
    assert out.std() == pytest.approx(math.sqrt(1 - a), rel=0.03)


def test_diffusion_noise_is_seeded_clamped_and_uint8():
    img = (np.random.default_rng(1).random((16, 20, 3)) * 255).astype(np.uint8)
    a, b, c = diffusion_noise(img, 500, 3), diffusion_noise(img, 500, 3), diffusion_noise(img, 500, 4)
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert (diffusion_noise(np.full((8, 8, 3), 255, np.uint8), 999, 0) == 255).any()  # clamped, not wrapped


def test_diffusion_noise_rejects_out_of_range_step():
    with pytest.raises(ValueError, match="t=1000 is outside 0..999"):
        diffusion_noise(np.zeros((2, 2, 3), np.uint8), 1000, 0)
