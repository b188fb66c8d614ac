"""The listwise adapter: which responses each loss compares, and the logged pair metrics."""

from __future__ import annotations

import pytest
import torch

from stages.train.loss_registry import LOSSES, LossName
from stages.train.losses import dpo_loss, ipo_loss, leanpo_loss, mdpo_loss, mipo_loss, perpo_loss, povid_loss, sft_loss
from stages.train.objective import ListBatch, LossParams, implicit_rewards, list_loss, pair_metrics

TOL = dict(rtol=1e-6, atol=1e-6)
ORIGINS = ["ground_truth", "policy", "policy", "hallucination", "distorted_image", "distorted_image"]


def _batch(seed: int = 0, ref: bool = True) -> ListBatch:
    g = torch.Generator().manual_seed(seed)
    B, N = 3, 6
    return ListBatch(
        policy_logps=(torch.randn(B, N, generator=g, dtype=torch.float64) * 4).requires_grad_(True),
        ref_logps=torch.randn(B, N, generator=g, dtype=torch.float64) * 4 if ref else None,
        n_tokens=torch.randint(1, 15, (B, N), generator=g).double(),
        rewards=torch.tensor(
            [[1.0, 0.8, 0.5, 0.2, 0.1, 0.0], [0.9, 0.9, 0.3, 0.6, 0.0, 0.4], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]],
            dtype=torch.float64,
        ),
        mask=torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool),
        origins=[ORIGINS] * 3,
        policy_image_term=(torch.randn(B, N, generator=g, dtype=torch.float64) * 4).requires_grad_(True),
        ref_image_term=torch.randn(B, N, generator=g, dtype=torch.float64) * 4,
    )


def _permuted(batch: ListBatch, perm: torch.Tensor) -> ListBatch:
    return ListBatch(
        policy_logps=batch.policy_logps[:, perm],
        ref_logps=None if batch.ref_logps is None else batch.ref_logps[:, perm],
        n_tokens=batch.n_tokens[:, perm],
        rewards=batch.rewards[:, perm],
        mask=batch.mask[:, perm],
        origins=[[row[i] for i in perm.tolist()] for row in batch.origins],
        policy_image_term=batch.policy_image_term[:, perm],
        ref_image_term=batch.ref_image_term[:, perm],
    )


POVIDS = (LossName.POVID, LossName.POVID_OFFLINE)


@pytest.mark.parametrize("name", [n for n in LOSSES if n not in POVIDS])
def test_every_loss_runs_and_skips_lists_without_spread(name):
    batch = _batch()
    out = list_loss(name, batch)
    assert out.per_row.shape == (3,) and torch.isfinite(out.loss)
    assert not out.row_valid[2]  # every reward equal: nothing to learn from
    assert out.per_row[2] == 0
    out.loss.backward()
    assert torch.isfinite(batch.policy_logps.grad).all()
    assert torch.all(batch.policy_logps.grad[2] == 0)


@pytest.mark.parametrize("name", list(LOSSES))
def test_order_of_responses_does_not_matter(name):
    batch = _batch(seed=1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    a, b = list_loss(name, batch).per_row, list_loss(name, _permuted(batch, perm)).per_row
    rows = slice(0, 2) if name in POVIDS else slice(None)  # povid breaks reward ties (row 2) by position
    torch.testing.assert_close(a[rows], b[rows], **TOL)


@pytest.mark.parametrize("name", POVIDS)
def test_povid_preference_comes_from_origins_not_rewards(name):
    batch = _batch()
    out = list_loss(name, batch)
    assert out.row_valid.all()  # row 2 has equal rewards but still a clean, a hallucinated and a distorted answer
    out.loss.backward()
    assert torch.isfinite(batch.policy_logps.grad).all()


@pytest.mark.parametrize("name", [n for n, spec in LOSSES.items() if spec.needs_reference])
def test_losses_needing_a_reference_say_so(name):
    with pytest.raises(ValueError, match="reference stage"):
        list_loss(name, _batch(ref=False))


def test_leanpo_needs_no_reference():
    assert torch.isfinite(list_loss(LossName.LEANPO, _batch(ref=False)).loss)


def test_dpo_and_ipo_use_best_vs_worst():
    b = _batch(seed=2)
    pol, ref, n = b.policy_logps, b.ref_logps, b.n_tokens
    # row 0: best index 0, worst 5; row 1: best 0 (first of the tie), worst 4 (entry 5 is masked)
    best, worst = torch.tensor([0, 0]), torch.tensor([5, 4])
    rows = torch.arange(2)
    args = (pol[rows, best], pol[rows, worst], ref[rows, best], ref[rows, worst])
    torch.testing.assert_close(list_loss("dpo", b).per_row[:2], dpo_loss(*args), **TOL)
    torch.testing.assert_close(
        list_loss("ipo", b).per_row[:2], ipo_loss(*args, n[rows, best], n[rows, worst]), **TOL
    )
    lean = (pol[rows, best], pol[rows, worst], n[rows, best], n[rows, worst])
    # leanpo smooths nothing by default (the paper's rule is unknown); our reward-gap rule is an option
    torch.testing.assert_close(list_loss("leanpo", b).per_row[:2], leanpo_loss(*lean, beta=2.0), **TOL)
    gap = b.rewards[rows, best] - b.rewards[rows, worst]
    ours = LossParams(leanpo_smoothing="ours_reward_gap", max_smoothing=0.2)
    torch.testing.assert_close(
        list_loss("leanpo", b, ours).per_row[:2], leanpo_loss(*lean, reward_gap=gap, beta=2.0, max_smoothing=0.2), **TOL
    )


def test_sft_trains_the_best_response_alone():
    b = _batch(seed=5)
    rows, best = torch.arange(2), torch.tensor([0, 0])  # row 1: first of the tie at 0.9; row 2 has no spread
    out = list_loss("sft", b)
    torch.testing.assert_close(out.per_row[:2], sft_loss(b.policy_logps[rows, best], b.n_tokens[rows, best]), **TOL)
    assert out.row_valid.tolist() == [True, True, False]
    assert torch.isfinite(list_loss("sft", _batch(ref=False)).loss)  # no reference needed


def test_mdpo_uses_top_k_vs_bottom_k():
    b = _batch(seed=3)
    got = list_loss("mdpo", b, LossParams(group_size=2)).per_row[0]
    pol, ref = b.policy_logps[0], b.ref_logps[0]
    top, bottom = torch.tensor([[0, 1]]), torch.tensor([[5, 4]])
    ones = torch.ones(1, 2, dtype=torch.bool)
    want = mdpo_loss(pol[top], pol[bottom], ref[top], ref[bottom], ones, ones)[0]
    torch.testing.assert_close(got, want, **TOL)


def test_group_size_is_capped_at_half_the_list():
    b = _batch(seed=4)
    # row 1 has 5 valid entries: k = 10 becomes 2 per group, so the groups never share a response
    got = list_loss("mdpo", b, LossParams(group_size=10)).per_row[1]
    pol, ref = b.policy_logps[1], b.ref_logps[1]
    top, bottom = torch.tensor([[0, 1]]), torch.tensor([[4, 2]])
    ones = torch.ones(1, 2, dtype=torch.bool)
    torch.testing.assert_close(got, mdpo_loss(pol[top], pol[bottom], ref[top], ref[bottom], ones, ones)[0], **TOL)


@pytest.mark.parametrize("name", [LossName.MDPO, LossName.MIPO])
def test_groups_shrink_until_every_chosen_beats_every_rejected(name):
    """As the rank stage's groups: [1, 0, 0, 0, 0, 0] with k = 2 compares [1] with [0], never a 0 in the chosen group."""
    b = _batch(seed=7)
    b.rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.9, 0.6, 0.6, 0.6, 0.6, 0.0], [1.0, 0.9, 0.5, 0.5, 0.2, 0.1]],
                             dtype=torch.float64)
    b.mask = torch.ones(3, 6, dtype=torch.bool)
    got = list_loss(name, b, LossParams(group_size=2)).per_row
    pol, ref, n = b.policy_logps, b.ref_logps, b.n_tokens
    groups = [([0], [5]), ([0], [5]), ([0, 1], [5, 4])]  # rows 0 and 1: k = 1 (ties); row 2: k = 2
    for row, (top, bottom) in enumerate(groups):
        top, bottom = torch.tensor([top]), torch.tensor([bottom])
        ones = torch.ones(1, top.shape[1], dtype=torch.bool)
        p, r = pol[row], ref[row]
        if name is LossName.MDPO:
            want = mdpo_loss(p[top], p[bottom], r[top], r[bottom], ones, ones)[0]
        else:
            want = mipo_loss(p[top], p[bottom], r[top], r[bottom], n[row][top], n[row][bottom], ones, ones)[0]
        torch.testing.assert_close(got[row], want, **TOL)


def test_povid_compares_the_best_clean_answer_with_its_hallucination_and_its_image_term():
    b = _batch(seed=5)
    pol, ref, img_pol, img_ref = b.policy_logps[0], b.ref_logps[0], b.policy_image_term[0], b.ref_image_term[0]
    # clean best: 0 (ground truth); hallucination: 3; POVID's image term of the chosen answer (column 0)
    want = povid_loss(pol[0], pol[3], img_pol[0], ref[0], ref[3], img_ref[0])
    torch.testing.assert_close(list_loss("povid", b).per_row[0], want, **TOL)
    # POVID's first stage: plain DPO, chosen vs hallucinated
    stage1 = list_loss("povid", b, LossParams(povid_stage=1)).per_row[0]
    torch.testing.assert_close(stage1, dpo_loss(pol[0], pol[3], ref[0], ref[3]), **TOL)
    b.policy_image_term = None
    with pytest.raises(ValueError, match="image term"):
        list_loss("povid", b)


def test_povid_offline_compares_the_best_clean_answer_with_the_perturbed_ones():
    b = _batch(seed=5)
    pol, ref = b.policy_logps[0], b.ref_logps[0]
    # clean best: 0 (ground truth); hallucination: 3; worst distorted-image answer: 5
    want = povid_loss(pol[0], pol[3], pol[5], ref[0], ref[3], ref[5])
    torch.testing.assert_close(list_loss("povid_offline", b).per_row[0], want, **TOL)


def test_povid_needs_a_clean_answer_and_povid_offline_a_perturbed_one():
    b = _batch(seed=6)
    b.origins = [["policy"] * 6] * 3
    assert list_loss("povid", b).row_valid.all()  # the image term is always there
    out = list_loss("povid_offline", b)
    assert not out.row_valid.any() and out.loss == 0
    b.origins = [["hallucination"] * 6] * 3
    assert not list_loss("povid", b).row_valid.any()


def test_perpo_adapter_is_the_listwise_loss():
    b = _batch(seed=7)
    want = perpo_loss(b.policy_logps, b.ref_logps, b.rewards, b.mask, 0.1, 0.5)
    torch.testing.assert_close(list_loss("perpo", b).per_row, want, **TOL)


def test_pair_metrics_count_pairs_ordered_by_reward():
    scores = torch.tensor([[3.0, 1.0, 2.0]])
    rewards = torch.tensor([[1.0, 0.5, 0.0]])
    m = pair_metrics(scores, rewards, torch.ones(1, 3, dtype=torch.bool))
    # pairs (0,1): +2, (0,2): +1, (1,2): -1
    assert m["pairs"] == 3 and m["reward_accuracy"] == pytest.approx(2 / 3) and m["reward_margin"] == pytest.approx(2 / 3)


def test_implicit_rewards():
    b = _batch(seed=8)
    torch.testing.assert_close(implicit_rewards("dpo", b), 0.1 * (b.policy_logps - b.ref_logps), **TOL)
    torch.testing.assert_close(implicit_rewards("leanpo", b), 2.0 * b.policy_logps / b.n_tokens, **TOL)


def test_leanpo_trains_its_own_pairs_prior_answer_vs_distorted_answer():
    """A list holding LeanPO's data (prior_answer and distorted_image): the best-reward prior answer vs the
    worst-reward distorted answer, whatever the rewards (a distorted answer above the prior answer, or a tie);
    a list without a prior answer keeps best vs worst by reward."""
    from stages.train.objective import usable_list

    origins = ["prior_answer", "distorted_image", "distorted_image", "prior_answer", "policy", "policy"]
    b = _batch(seed=3)
    b.origins = [origins, origins, ORIGINS]
    b.rewards = torch.tensor(
        [[0.2, 0.9, 0.5, 0.1, 1.0, 0.0], [0.7, 0.7, 0.7, 0.7, 0.7, 0.7], [1.0, 0.8, 0.5, 0.2, 0.1, 0.0]], dtype=torch.float64
    )
    b.mask = torch.ones(3, 6, dtype=torch.bool)
    pol, n = b.policy_logps, b.n_tokens
    best, worst = torch.tensor([0, 0, 0]), torch.tensor([2, 1, 5])  # row 1: all tied: first prior, first distorted
    rows = torch.arange(3)
    out = list_loss("leanpo", b)
    assert out.row_valid.all()
    torch.testing.assert_close(out.per_row, leanpo_loss(pol[rows, best], pol[rows, worst], n[rows, best], n[rows, worst], beta=2.0), **TOL)
    assert usable_list("leanpo", [0.7, 0.7], ["prior_answer", "distorted_image"])
    assert not usable_list("leanpo", [0.7, 0.7], ["policy", "distorted_image"])
