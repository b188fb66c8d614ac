"""Each loss against a plain-Python reimplementation, TRL's formulas, and finite-difference gradients."""

from __future__ import annotations

import inspect
import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F

from stages.train.loss_registry import LOSSES, LossName
from stages.train.losses import (
    dpo_loss,
    ipo_loss,
    leanpo_loss,
    mdpo_loss,
    mipo_loss,
    perpo_loss,
    povid_loss,
    sft_loss,
)

TOL = dict(rtol=1e-6, atol=1e-6)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _rand(*shape: int, seed: int = 0, scale: float = 5.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_(True)


# ---- plain references ---------------------------------------------------------------------------


def ref_dpo(pc, pr, rc, rr, beta, eps=0.0):
    z = beta * ((pc - rc) - (pr - rr))
    return -(1 - eps) * _log_sigmoid(z) - eps * _log_sigmoid(-z)


def ref_ipo(pc, pr, rc, rr, lc, lr, beta):
    return ((pc - rc) / max(lc, 1) - (pr - rr) / max(lr, 1) - 1 / (2 * beta)) ** 2


def ref_perpo(pol, ref, psi, mask, beta, gamma):
    num = z = 0.0
    for i, j in itertools.permutations(range(len(pol)), 2):
        if mask[i] and mask[j] and psi[i] > psi[j]:
            w = (psi[i] - psi[j]) ** gamma
            s_i, s_j = pol[i] - ref[i], pol[j] - ref[j]
            num += math.log1p(math.exp(-beta * (s_i - s_j))) * w
            z += w
    return num / z if z > 0 else 0.0


def _mean(xs):
    return sum(xs) / len(xs)


def ref_mdpo(pc, pr, rc, rr, cm, rm, beta, eps=0.0):
    w = [p - r for p, r, m in zip(pc, rc, cm) if m]
    l_ = [p - r for p, r, m in zip(pr, rr, rm) if m]
    if not w or not l_:
        return 0.0
    z = beta * (_mean(w) - _mean(l_))
    return -(1 - eps) * _log_sigmoid(z) - eps * _log_sigmoid(-z)


def ref_mipo_ustat(hw, hl, beta):
    """U-statistic over i≠i', j≠j' (falls back to the plain square for groups of one)."""
    c = 1 / (2 * beta)
    iw = list(itertools.permutations(range(len(hw)), 2)) if len(hw) > 1 else [(0, 0)]
    il = list(itertools.permutations(range(len(hl)), 2)) if len(hl) > 1 else [(0, 0)]
    terms = [(hw[a] - hl[b] - c) * (hw[a2] - hl[b2] - c) for a, a2 in iw for b, b2 in il]
    return _mean(terms)


# ---- DPO / IPO ----------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_dpo_matches_plain_formula(eps):
    pc, pr, rc, rr = (_rand(16, seed=s) for s in range(4))
    got = dpo_loss(pc, pr, rc, rr, beta=0.3, label_smoothing=eps)
    want = [ref_dpo(*(t[i].item() for t in (pc, pr, rc, rr)), 0.3, eps) for i in range(16)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), **TOL)


def test_ipo_matches_plain_formula():
    pc, pr, rc, rr = (_rand(16, seed=s) for s in range(4))
    lc, lr = torch.randint(0, 30, (16,)).double(), torch.randint(0, 30, (16,)).double()
    got = ipo_loss(pc, pr, rc, rr, lc, lr, beta=0.1)
    want = [ref_ipo(*(t[i].item() for t in (pc, pr, rc, rr, lc, lr)), 0.1) for i in range(16)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), **TOL)


# TRL 1.16 DPOTrainer._compute_loss, rewritten here line for line (the loss sits inside the trainer
# method and cannot be called alone). test_trl_source_still_has_these_formulas guards the copy.
def trl_sigmoid(beta, delta_score):
    return -F.logsigmoid(beta * delta_score)


def trl_ipo(beta, chosen_scores, rejected_scores, completion_mask):
    chosen_mask, rejected_mask = completion_mask.chunk(2, dim=0)
    chosen_avg_score = chosen_scores / chosen_mask.sum(dim=1).clamp(min=1.0)
    rejected_avg_score = rejected_scores / rejected_mask.sum(dim=1).clamp(min=1.0)
    ipo_delta = chosen_avg_score - rejected_avg_score
    return (ipo_delta - 1 / (2 * beta)) ** 2


def trl_robust(beta, label_smoothing, delta_score):
    clean_loss_term = -(1 - label_smoothing) * F.logsigmoid(beta * delta_score)
    flipped_loss_term = -label_smoothing * F.logsigmoid(-beta * delta_score)
    return (clean_loss_term - flipped_loss_term) / (1 - 2 * label_smoothing)


def test_trl_source_still_has_these_formulas():
    from trl import DPOTrainer

    src = inspect.getsource(DPOTrainer._compute_loss)
    for line in (
        "per_sequence_loss = -F.logsigmoid(self.beta * delta_score)",
        "chosen_avg_score = chosen_scores / chosen_mask.sum(dim=1).clamp(min=1.0)",
        "per_sequence_loss = (ipo_delta - 1 / (2 * self.beta)) ** 2",
        "flipped_loss_term = -self.label_smoothing * F.logsigmoid(-self.beta * delta_score)",
        "per_sequence_loss = (clean_loss_term - flipped_loss_term) / (1 - 2 * self.label_smoothing)",
    ):
        assert line in src, f"TRL's DPO loss changed: {line!r} not found"


def test_pairwise_losses_match_trl():
    pc, pr, rc, rr = (_rand(12, seed=s) for s in range(4))
    delta = (pc - rc) - (pr - rr)
    torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, beta=0.1), trl_sigmoid(0.1, delta), **TOL)
    # robust at ε = 0 is plain DPO; cDPO's flipped term has the opposite sign to robust's.
    torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, beta=0.1), trl_robust(0.1, 0.0, delta), **TOL)
    eps = 0.2
    cdpo = dpo_loss(pc, pr, rc, rr, beta=0.1, label_smoothing=eps)
    flipped = -F.logsigmoid(-0.1 * delta)
    torch.testing.assert_close((cdpo - 2 * eps * flipped) / (1 - 2 * eps), trl_robust(0.1, eps, delta), **TOL)
    lc, lr = torch.randint(1, 20, (12,)), torch.randint(1, 20, (12,))
    width = int(max(lc.max(), lr.max()))
    completion_mask = (torch.arange(width).unsqueeze(0) < torch.cat([lc, lr]).unsqueeze(1)).long()
    got = ipo_loss(pc, pr, rc, rr, lc.double(), lr.double(), beta=0.1)
    torch.testing.assert_close(got, trl_ipo(0.1, pc - rc, pr - rr, completion_mask), **TOL)


# ---- PerPO --------------------------------------------------------------------------------------


def _perpo_inputs(B=4, N=6, seed=0, ties=True):
    rng = random.Random(seed)
    pol, ref = _rand(B, N, seed=seed), _rand(B, N, seed=seed + 100)
    levels = [0.0, 0.25, 0.5, 1.0] if ties else None
    psi = torch.tensor(
        [[rng.choice(levels) if ties else rng.random() for _ in range(N)] for _ in range(B)], dtype=torch.float64
    )
    mask = torch.tensor([[rng.random() > 0.2 for _ in range(N)] for _ in range(B)])
    return pol, ref, psi, mask


@pytest.mark.parametrize("ties", [True, False])
def test_perpo_matches_loop(ties):
    pol, ref, psi, mask = _perpo_inputs(seed=3, ties=ties)
    got = perpo_loss(pol, ref, psi, mask, beta=0.5, gamma=0.5)
    want = [ref_perpo(pol[b].tolist(), ref[b].tolist(), psi[b].tolist(), mask[b].tolist(), 0.5, 0.5) for b in range(4)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), **TOL)


def test_perpo_is_invariant_to_permutation():
    pol, ref, psi, mask = _perpo_inputs(seed=5)
    perm = torch.randperm(pol.shape[1], generator=torch.Generator().manual_seed(1))
    a = perpo_loss(pol, ref, psi, mask)
    b = perpo_loss(pol[:, perm], ref[:, perm], psi[:, perm], mask[:, perm])
    torch.testing.assert_close(a, b, **TOL)


def test_perpo_ties_and_masked_entries_add_nothing():
    # A and B tie at ψ = 1, C has ψ = 0.5, D is masked and holds NaN: only (A, C) and (B, C) count.
    s = torch.tensor([[0.3, -1.2, 0.4, float("nan")]], dtype=torch.float64, requires_grad=True)
    psi = torch.tensor([[1.0, 1.0, 0.5, 0.9]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False]])
    loss = perpo_loss(s, torch.zeros_like(s), psi, mask, beta=1.0, gamma=0.5)
    want = 0.5 * (math.log1p(math.exp(-(0.3 - 0.4))) + math.log1p(math.exp(-(-1.2 - 0.4))))
    torch.testing.assert_close(loss, torch.tensor([want], dtype=torch.float64), **TOL)
    loss.sum().backward()
    assert torch.isfinite(s.grad).all() and s.grad[0, 3] == 0


def test_perpo_row_without_pairs_is_zero_with_finite_gradient():
    pol = _rand(2, 4, seed=9)
    ref = torch.zeros(2, 4, dtype=torch.float64)
    psi = torch.tensor([[0.5] * 4, [1.0, 0.0, 0.3, 0.2]], dtype=torch.float64)
    mask = torch.tensor([[True] * 4, [True, False, False, False]])
    loss = perpo_loss(pol, ref, psi, mask)
    assert loss.tolist() == [0.0, 0.0]
    loss.sum().backward()
    assert torch.equal(pol.grad, torch.zeros_like(pol))


# ---- mDPO / mIPO --------------------------------------------------------------------------------


def _group_inputs(seed=0, B=4, K=3):
    t = [_rand(B, K, seed=seed + i) for i in range(4)]
    cm = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    rm = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    lens = [torch.randint(1, 12, (B, K), generator=torch.Generator().manual_seed(seed + j)).double() for j in (7, 8)]
    return t, cm, rm, lens


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_mdpo_matches_plain_formula(eps):
    (pc, pr, rc, rr), cm, rm, _ = _group_inputs(seed=11)
    got = mdpo_loss(pc, pr, rc, rr, cm, rm, beta=0.2, label_smoothing=eps)
    want = [
        ref_mdpo(pc[b].tolist(), pr[b].tolist(), rc[b].tolist(), rr[b].tolist(), cm[b].tolist(), rm[b].tolist(), 0.2, eps)
        for b in range(4)
    ]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), **TOL)


def test_mdpo_with_groups_of_one_is_dpo():
    pc, pr, rc, rr = (_rand(5, 1, seed=s) for s in range(4))
    ones = torch.ones(5, 1, dtype=torch.bool)
    torch.testing.assert_close(mdpo_loss(pc, pr, rc, rr, ones, ones), dpo_loss(pc, pr, rc, rr).squeeze(1), **TOL)


@pytest.mark.parametrize("unbiased", [True, False])
def test_mipo_matches_plain_formula(unbiased):
    (pc, pr, rc, rr), cm, rm, (lc, lr) = _group_inputs(seed=21)
    got = mipo_loss(pc, pr, rc, rr, lc, lr, cm, rm, beta=0.1, unbiased=unbiased)
    want = []
    for b in range(4):
        hw = [(pc[b, k] - rc[b, k]).item() / lc[b, k].item() for k in range(3) if cm[b, k]]
        hl = [(pr[b, k] - rr[b, k]).item() / lr[b, k].item() for k in range(3) if rm[b, k]]
        if not hw or not hl:
            want.append(0.0)
        elif unbiased:
            want.append(ref_mipo_ustat(hw, hl, 0.1))
        else:
            want.append((_mean(hw) - _mean(hl) - 5.0) ** 2)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), **TOL)


def test_mipo_default_is_bounded_below_on_adversarial_inputs():
    """Spreading the log-ratios inside a group cannot push the default mIPO below 0; our variance-corrected
    option falls without limit (k = 2, chosen log-ratios h̄ ± t: exactly t² below the plain square)."""
    ones = torch.ones(1, 2, dtype=torch.bool)
    lens = torch.ones(1, 2, dtype=torch.float64)
    zeros = torch.zeros(1, 2, dtype=torch.float64)
    plain, corrected = [], []
    for t in (0.0, 10.0, 100.0, 1e4):
        chosen = torch.tensor([[5.0 + t, 5.0 - t]], dtype=torch.float64)  # mean margin 5 = 1/(2β): the square is 0
        plain.append(mipo_loss(chosen, zeros, zeros, zeros, lens, lens, ones, ones, beta=0.1).item())
        corrected.append(mipo_loss(chosen, zeros, zeros, zeros, lens, lens, ones, ones, beta=0.1, unbiased=True).item())
        assert corrected[-1] == pytest.approx(plain[-1] - t**2, rel=1e-9, abs=1e-9)
    assert plain == [0.0, 0.0, 0.0, 0.0] and corrected[-1] == pytest.approx(-1e8)
    # and on random, deliberately spread inputs the default never goes below 0
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        pc, pr, rc, rr = (torch.randn(8, 4, generator=g, dtype=torch.float64) * 1e3 for _ in range(4))
        lc, lr = torch.randint(1, 30, (8, 4), generator=g).double(), torch.randint(1, 30, (8, 4), generator=g).double()
        mask = torch.rand(8, 4, generator=g) > 0.3
        assert (mipo_loss(pc, pr, rc, rr, lc, lr, mask, mask) >= 0).all()


def test_mipo_with_groups_of_one_is_ipo():
    pc, pr, rc, rr = (_rand(5, 1, seed=s) for s in range(4))
    lc, lr = torch.full((5, 1), 3.0, dtype=torch.float64), torch.full((5, 1), 7.0, dtype=torch.float64)
    ones = torch.ones(5, 1, dtype=torch.bool)
    torch.testing.assert_close(
        mipo_loss(pc, pr, rc, rr, lc, lr, ones, ones), ipo_loss(pc, pr, rc, rr, lc, lr).squeeze(1), **TOL
    )


# ---- LeanPO / POVID -----------------------------------------------------------------------------


@pytest.mark.parametrize("with_gap", [False, True])
def test_leanpo_matches_plain_formula(with_gap):
    pc, pr = _rand(10, seed=1), _rand(10, seed=2)
    lc, lr = torch.randint(1, 20, (10,)).double(), torch.randint(1, 20, (10,)).double()
    gap = torch.rand(10, dtype=torch.float64) if with_gap else None
    got = leanpo_loss(pc, pr, lc, lr, reward_gap=gap, beta=2.0, max_smoothing=0.2)
    want = []
    for i in range(10):
        z = 2.0 * (pc[i].item() / lc[i].item() - pr[i].item() / lr[i].item())
        eps = 0.2 * (1 - gap[i].item()) if with_gap else 0.0
        want.append(-(1 - eps) * _log_sigmoid(z) - eps * _log_sigmoid(-z))
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), **TOL)


def test_povid_is_mean_of_two_dpo_terms_and_masks_drop_a_term():
    pc, ph, pd, rc, rh, rd = (_rand(6, seed=s) for s in range(6))
    hm = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    got = povid_loss(pc, ph, pd, rc, rh, rd, beta=0.1, hallucinated_mask=hm)
    want = [
        0.5 * (ref_dpo(pc[i].item(), ph[i].item(), rc[i].item(), rh[i].item(), 0.1) if hm[i] else 0.0)
        + 0.5 * ref_dpo(pc[i].item(), pd[i].item(), rc[i].item(), rd[i].item(), 0.1)
        for i in range(6)
    ]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), **TOL)


def test_sft_is_the_mean_token_nll_of_the_best_response():
    logp, lens = _rand(4, seed=3), torch.tensor([4.0, 1.0, 0.0, 7.0], dtype=torch.float64)
    want = [-logp[i].item() / max(lens[i].item(), 1.0) for i in range(4)]
    torch.testing.assert_close(sft_loss(logp, lens), torch.tensor(want, dtype=torch.float64), **TOL)


# ---- gradients ----------------------------------------------------------------------------------


def _gradcheck_args(name: LossName):
    """The loss's formula and inputs for gradcheck: the differentiable log-prob tensors, the rest fixed."""
    lens = torch.tensor([3.0, 5.0, 2.0], dtype=torch.float64)
    if name is LossName.DPO:
        return dpo_loss, [_rand(3, seed=s, scale=1) for s in range(4)], dict(label_smoothing=0.1)
    if name is LossName.IPO:
        return ipo_loss, [_rand(3, seed=s, scale=1) for s in range(4)] + [lens, lens + 1], {}
    if name is LossName.PERPO:
        pol, ref, psi, mask = _perpo_inputs(B=2, N=4, seed=2)
        return perpo_loss, [pol.detach().requires_grad_(), ref.detach().requires_grad_(), psi, mask], {}
    if name is LossName.MDPO:
        (pc, pr, rc, rr), cm, rm, _ = _group_inputs(seed=4)
        return mdpo_loss, [t.detach().requires_grad_() for t in (pc, pr, rc, rr)] + [cm, rm], {}
    if name is LossName.MIPO:
        (pc, pr, rc, rr), cm, rm, (lc, lr) = _group_inputs(seed=4)
        return mipo_loss, [t.detach().requires_grad_() for t in (pc, pr, rc, rr)] + [lc, lr, cm, rm], {}
    if name is LossName.LEANPO:
        return leanpo_loss, [_rand(3, seed=0), _rand(3, seed=1), lens, lens + 2], dict(reward_gap=torch.rand(3, dtype=torch.float64))
    if name in (LossName.POVID, LossName.POVID_OFFLINE):  # one formula; they differ in what fills the image side
        return povid_loss, [_rand(3, seed=s, scale=1) for s in range(6)], dict(distorted_mask=torch.tensor([True, False, True]))
    if name is LossName.SFT:
        return sft_loss, [_rand(3, seed=0), lens], {}
    raise AssertionError(f"no gradcheck inputs for loss {name!r}: add them here")


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradients_match_finite_differences(name):
    fn, args, kwargs = _gradcheck_args(name)
    assert torch.autograd.gradcheck(lambda *a: fn(*a, **kwargs), tuple(args))
