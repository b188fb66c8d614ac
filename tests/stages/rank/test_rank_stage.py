"""Tests of the rank stage: ordering, dedupe, filters, caps, pairs modes, groups and the shard function."""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from data_schemas.tables import ORIGINS, validate_table
from stages.base import ShardInputs, ShardOutput
from stages.rank import (
    NORMALIZERS,
    PAIR_INDICES,
    SPEC,
    Candidate,
    DedupeMode,
    DropReason,
    PairsMode,
    RankConfig,
    RankedList,
    cap_indices,
    dedupe,
    group_row,
    order_candidates,
    pair_rows,
    rank_candidates,
)
from stages.rank.config import DEFAULT_ORIGIN_ORDER
from tests.factories import task_row


def cand(cid: str, reward: float | None, origin: str = "policy", text: str | None = None, logprob: float | None = None) -> Candidate:
    return Candidate(cand_id=cid, origin=origin, text=text if text is not None else f"text {cid}", reward=reward, logprob_sum=logprob)


def ranked(*cands: Candidate) -> RankedList:
    return RankedList(candidates=tuple(cands), scored=cands[0].reward is not None)


def ids(cands) -> list[str]:
    return [c.cand_id for c in cands]


# --- ordering


def test_order_sorts_by_reward_then_origin_then_logprob():
    cands = [
        cand("p_low_lp", 0.5, "policy", logprob=-9.0),
        cand("hall", 0.5, "hallucination", logprob=-0.1),
        cand("gt", 0.5, "ground_truth"),
        cand("p_high_lp", 0.5, "policy", logprob=-1.0),
        cand("p_no_lp", 0.5, "policy"),
        cand("dist", 0.5, "distorted_image", logprob=0.0),
        cand("best", 0.9, "hallucination"),
        cand("worst", 0.1, "ground_truth"),
    ]
    assert ids(order_candidates(cands, DEFAULT_ORIGIN_ORDER)) == [
        "best", "gt", "p_high_lp", "p_low_lp", "p_no_lp", "dist", "hall", "worst"
    ]


def test_order_is_independent_of_input_order():
    cands = [cand(f"c{i}", 0.5) for i in range(5)]
    assert ids(order_candidates(cands[::-1], DEFAULT_ORIGIN_ORDER)) == ids(order_candidates(cands, DEFAULT_ORIGIN_ORDER))


def test_origin_order_is_configurable():
    order = ("hallucination", "distorted_image", "policy", "ground_truth")
    cands = [cand("gt", 0.5, "ground_truth"), cand("hall", 0.5, "hallucination")]
    assert ids(order_candidates(cands, order)) == ["hall", "gt"]


# --- dedupe


@pytest.mark.parametrize(
    "mode, expected",
    [
        (DedupeMode.NONE, ["a", "b", "c", "d"]),
        (DedupeMode.EXACT, ["a", "b", "d"]),
        (DedupeMode.WHITESPACE, ["a", "b", "d"]),
        (DedupeMode.CASEFOLD_WHITESPACE, ["a", "d"]),
    ],
)
def test_dedupe_keeps_first_copy(mode, expected):
    cands = [
        cand("a", 0.9, text="A  red Car"),
        cand("b", 0.8, text="a red car"),
        cand("c", 0.7, text="a red car"),
        cand("d", 0.1, text="a blue car"),
    ]
    assert ids(dedupe(cands, NORMALIZERS[mode])) == expected


def test_every_dedupe_mode_has_a_normalizer():
    assert set(NORMALIZERS) == set(DedupeMode)


def test_dedupe_keeps_best_ranked_copy_after_ordering():
    cands = [cand("low", 0.2, text="Same"), cand("high", 0.9, text="same "), cand("other", 0.0, text="x")]
    result = rank_candidates(
        cands, origin_order=DEFAULT_ORIGIN_ORDER, normalize=NORMALIZERS[DedupeMode.CASEFOLD_WHITESPACE],
        min_spread=0.0, max_list_len=8,
    )
    assert ids(result.candidates) == ["high", "other"]
    assert result.n_duplicates == 1


# --- filters


def _rank(cands, min_spread=0.1, max_list_len=8):
    return rank_candidates(
        cands, origin_order=DEFAULT_ORIGIN_ORDER, normalize=NORMALIZERS[DedupeMode.CASEFOLD_WHITESPACE],
        min_spread=min_spread, max_list_len=max_list_len,
    )


@pytest.mark.parametrize(
    "cands, reason",
    [
        ([], DropReason.NO_CANDIDATES),
        ([cand("a", 1.0)], DropReason.TOO_FEW),
        ([cand("a", 1.0, text="same"), cand("b", 0.0, text="SAME")], DropReason.TOO_FEW),
        ([cand("a", 0.5), cand("b", 0.5), cand("c", 0.5)], DropReason.SINGLE_REWARD),
        ([cand("a", 0.55), cand("b", 0.5)], DropReason.LOW_SPREAD),
        ([cand("a", None), cand("b", None)], DropReason.SINGLE_ORIGIN),
    ],
)
def test_drop_reasons(cands, reason):
    assert _rank(cands) == reason


def test_spread_at_threshold_is_kept():
    result = _rank([cand("a", 0.3), cand("b", 0.2)], min_spread=0.1)
    assert isinstance(result, RankedList)


# --- caption (unscored) lists


def test_unscored_list_is_ordered_by_origin_and_keeps_null_rewards():
    cands = [cand("hall", None, "hallucination"), cand("pol", None, "policy", logprob=-1.0), cand("gt", None, "ground_truth")]
    result = _rank(cands)
    assert isinstance(result, RankedList) and not result.scored
    assert ids(result.candidates) == ["gt", "pol", "hall"]
    assert all(c.reward is None for c in result.candidates)
    row = pair_rows("t", "p", result, mode=PairsMode.ALL_PAIRS, min_margin=0.5, origin_order=DEFAULT_ORIGIN_ORDER)
    assert [(r["chosen_origin"], r["rejected_origin"]) for r in row] == [
        ("ground_truth", "policy"), ("ground_truth", "hallucination"), ("policy", "hallucination")
    ]
    assert all(r["margin"] is None and r["chosen_reward"] is None for r in row)


def test_unscored_pairs_skip_same_origin():
    lst = ranked(cand("gt", None, "ground_truth"), cand("p1", None), cand("p2", None))
    rows = pair_rows("t", "p", lst, mode=PairsMode.ALL_PAIRS, min_margin=0.0, origin_order=DEFAULT_ORIGIN_ORDER)
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("text gt", "text p1"), ("text gt", "text p2")]


# --- cap


@pytest.mark.parametrize("n, max_len", [(2, 2), (5, 8), (9, 3), (20, 8), (100, 7), (9, 8)])
def test_cap_keeps_best_worst_and_even_spread(n, max_len):
    kept = cap_indices(n, max_len)
    assert len(kept) == min(n, max_len)
    assert kept == sorted(set(kept))
    assert kept[0] == 0 and kept[-1] == n - 1
    if n > max_len:
        gaps = [b - a for a, b in itertools.pairwise(kept)]
        assert max(gaps) - min(gaps) <= 1


def test_cap_applies_to_ranked_list():
    cands = [cand(f"c{i:02d}", i / 19) for i in range(20)]
    result = _rank(cands, max_list_len=5)
    assert [c.reward for c in result.candidates] == [1.0, 14 / 19, 9 / 19, 5 / 19, 0.0]
    assert result.n_capped == 15


# --- pairs


def _scored_list():
    return ranked(cand("a", 0.9), cand("b", 0.7), cand("c", 0.7), cand("d", 0.2))


@pytest.mark.parametrize(
    "mode, expected",
    [
        (PairsMode.BEST_VS_WORST, [("a", "d")]),
        (PairsMode.BEST_VS_EACH, [("a", "b"), ("a", "c"), ("a", "d")]),
        (PairsMode.ALL_PAIRS, [("a", "b"), ("a", "c"), ("a", "d"), ("b", "d"), ("c", "d")]),  # b-c tie skipped
    ],
)
def test_pairs_modes(mode, expected):
    rows = pair_rows("t", "prompt", _scored_list(), mode=mode, min_margin=0.0, origin_order=DEFAULT_ORIGIN_ORDER)
    assert [(r["chosen"][-1], r["rejected"][-1]) for r in rows] == expected
    for r in rows:
        assert r["margin"] == pytest.approx(r["chosen_reward"] - r["rejected_reward"])
        assert r["margin"] > 0


def test_every_pairs_mode_has_an_indexer():
    assert set(PAIR_INDICES) == set(PairsMode)


def test_min_margin_filters_pairs():
    rows = pair_rows("t", "p", _scored_list(), mode=PairsMode.ALL_PAIRS, min_margin=0.5, origin_order=DEFAULT_ORIGIN_ORDER)
    assert [(r["chosen"][-1], r["rejected"][-1]) for r in rows] == [("a", "d"), ("b", "d"), ("c", "d")]


# --- groups


def test_groups_are_top_and_bottom_k_and_disjoint():
    lst = ranked(*[cand(f"c{i}", 1.0 - i / 10) for i in range(7)])
    row = group_row("t", "p", lst, group_k=3, origin_order=DEFAULT_ORIGIN_ORDER)
    assert row["chosen"] == ["text c0", "text c1", "text c2"]
    assert row["rejected"] == ["text c4", "text c5", "text c6"]
    assert not set(row["chosen"]) & set(row["rejected"])
    assert min(row["chosen_rewards"]) > max(row["rejected_rewards"])


def test_groups_shrink_when_a_tie_straddles_the_boundary():
    row = group_row("t", "p", _scored_list(), group_k=2, origin_order=DEFAULT_ORIGIN_ORDER)
    assert row["chosen"] == ["text a"] and row["rejected"] == ["text d"]


def test_groups_of_unscored_lists_are_separated_by_origin():
    lst = ranked(cand("gt", None, "ground_truth"), cand("p", None), cand("d", None, "distorted_image"), cand("h", None, "hallucination"))
    row = group_row("t", "p", lst, group_k=2, origin_order=DEFAULT_ORIGIN_ORDER)
    assert row["chosen"] == ["text gt", "text p"] and row["rejected"] == ["text d", "text h"]
    assert row["chosen_rewards"] is None and row["rejected_rewards"] is None
    same_origin_at_boundary = ranked(cand("gt", None, "ground_truth"), cand("p1", None), cand("p2", None), cand("h", None, "hallucination"))
    row = group_row("t", "p", same_origin_at_boundary, group_k=2, origin_order=DEFAULT_ORIGIN_ORDER)
    assert row["chosen"] == ["text gt"] and row["rejected"] == ["text h"]


# --- config


def test_config_rejects_groups_larger_than_lists():
    with pytest.raises(ValidationError, match=r"group_k=5 needs lists of at least 10 responses but max_list_len=8"):
        RankConfig(group_k=5, max_list_len=8)


def test_config_rejects_a_repeated_origin_in_the_order():
    with pytest.raises(ValidationError, match=r"origin_order=\['policy', 'policy'\] must list origins at most once each"):
        RankConfig(origin_order=("policy", "policy"))


def test_an_origin_order_written_before_prior_answer_existed_stays_valid():
    """An order of the four older origins (a config from before prior_answer) loads; the origin it leaves
    out ranks after the listed ones."""
    cfg = RankConfig(origin_order=("ground_truth", "policy", "distorted_image", "hallucination"))
    assert "prior_answer" not in cfg.origin_order


def test_config_fields_have_descriptions():
    for name, field in RankConfig.model_fields.items():
        if name != "enabled":
            assert field.description, name


# --- run_shard


def _tasks(rows: list[tuple[str, str]]) -> pa.Table:
    return validate_table(
        [task_row(tid, ttype, f"prompt {tid}", image=b"not decoded", width=8, height=8) for tid, ttype in rows],
        "tasks",
    )


def _scored(rows: list[tuple[str, str, str, str, float | None]]) -> pa.Table:
    return validate_table(
        [
            {"task_id": tid, "cand_id": cid, "origin": origin, "text": text, "reward": reward, "logprob_sum": -1.0, "n_tokens": 3}
            | {k: None for k in ("finish_reason", "model", "sample_index", "seed", "sampling", "distortion", "reward_kind", "parse_ok", "detail")}
            for tid, cid, origin, text, reward in rows
        ],
        "scored",
    )


def _run(tasks: pa.Table, scored: pa.Table, **config):
    out = ShardOutput(stage="rank", index=0, scratch_dir=Path("/nonexistent"))
    return SPEC.run_shard(ShardInputs({"tasks": tasks, "scored": scored}), out, RankConfig(**config))


def test_run_shard_counts_every_task_and_quarantines_bad_rows():
    tasks = _tasks([("good", "grounding"), ("flat", "ocr"), ("narrow", "vqa"), ("lonely", "vqa"), ("cap", "caption"),
                    ("cap1", "caption"), ("gone", "vqa")])
    scored = _scored(
        [
            ("good", "g1", "policy", "box A", 0.9), ("good", "g2", "policy", "box B", 0.1),
            ("good", "g3", "ground_truth", "box GT", 1.0), ("good", "g4", "policy", "box c", None),
            ("flat", "f1", "policy", "x", 0.5), ("flat", "f2", "policy", "y", 0.5),
            ("narrow", "n1", "policy", "x", 0.52), ("narrow", "n2", "policy", "y", 0.5),
            ("lonely", "l1", "policy", "x", 1.0),
            ("cap", "c1", "hallucination", "a dog", None), ("cap", "c2", "ground_truth", "a cat", None),
            ("cap1", "d1", "policy", "a dog", None), ("cap1", "d2", "policy", "a cat", None),
            ("ghost", "z1", "policy", "x", 1.0),
            ("good", "g5", "alien", "x", 1.0),
            ("good", "g6", "policy", "nan", float("nan")),
        ]
    )
    result = _run(tasks, scored, min_spread=0.1, pairs_mode="all_pairs")
    m = result.metrics
    assert m["tasks_in"] == 7
    assert m["lists_out"] + sum(v for k, v in m.items() if k.startswith("dropped_")) == m["tasks_in"]
    assert (m["dropped_single_reward"], m["dropped_low_spread"], m["dropped_too_few"], m["dropped_single_origin"]) == (1, 1, 1, 1)
    assert m["dropped_no_candidates"] == 1  # "gone": every row quarantined before rank, not a too-short list
    assert m["lists_out"] == 2 and m["lists_unscored"] == 1
    assert sorted(q["reason"] for q in result.quarantine) == ["invalid_reward", "missing_reward", "unknown_origin", "unknown_task"]

    listwise = {r["task_id"]: r for r in result.tables["listwise"].to_pylist()}
    assert listwise["good"]["responses"] == ["box GT", "box A", "box B"]
    assert listwise["good"]["rewards"] == [1.0, 0.9, 0.1]
    assert listwise["cap"]["rewards"] is None and listwise["cap"]["origins"] == ["ground_truth", "hallucination"]
    assert result.tables["pairs"].num_rows == m["pairs_out"] == 4  # 3 from "good", 1 from "cap"
    assert result.tables["groups"].num_rows == m["groups_out"] == 2
    for name in SPEC.writes:
        assert result.tables[name].schema.equals(validate_table(result.tables[name], name).schema)


def test_run_shard_on_empty_input():
    result = _run(_tasks([]), _scored([]))
    assert all(result.tables[name].num_rows == 0 for name in SPEC.writes)
    assert result.metrics["tasks_in"] == 0 and not result.quarantine


def test_spec_declares_its_tables():
    assert SPEC.reads == ("tasks", "scored") and SPEC.writes == ("listwise", "pairs", "groups")
    assert set(DEFAULT_ORIGIN_ORDER) == set(ORIGINS)


def test_list_origins_compose_policy_only_lists_as_perpo_publishes():
    """PerPO's lists are the N policy samples (answers_gen): list_origins = ['policy'], max_list_len >= n."""
    rows = [("t", f"p{i}", "policy", f"answer {i}", i / 19) for i in range(20)]
    rows += [("t", "gt", "ground_truth", "truth", 1.0), ("t", "h", "hallucination", "wrong", 0.0)]
    result = _run(_tasks([("t", "grounding")]), _scored(rows), list_origins=["policy"], max_list_len=20)
    (row,) = result.tables["listwise"].to_pylist()
    assert row["origins"] == ["policy"] * 20 and len(row["responses"]) == 20
    assert result.metrics["candidates_excluded_origin"] == 2 and result.metrics["candidates_capped"] == 0
    everything = _run(_tasks([("t", "grounding")]), _scored(rows))  # the default keeps every origin, capped at 8
    (mixed,) = everything.tables["listwise"].to_pylist()
    assert {"ground_truth", "hallucination"} <= set(mixed["origins"]) and len(mixed["responses"]) == 8
    with pytest.raises(ValidationError, match="list_origins"):
        RankConfig(list_origins=[])


# --- order_by = origin (LeanPO's own pairs)


def _leanpo_rows(task: str, prior_reward: float, distorted_rewards: list[float]) -> list[tuple]:
    rows = [(task, f"{task}:prior_answer:0", "prior_answer", f"{task} prior", prior_reward)]
    rows += [(task, f"{task}:distorted_image:diffusion:{i}", "distorted_image", f"{task} distorted {i}", r)
             for i, r in enumerate(distorted_rewards)]
    rows += [(task, f"{task}:policy:0", "policy", f"{task} policy", 1.0), (task, f"{task}:gt", "ground_truth", f"{task} gt", 1.0),
             (task, f"{task}:h", "hallucination", f"{task} wrong", 0.0)]
    return rows


def test_ordered_by_origin_prior_answers_come_first_whatever_their_reward():
    """LeanPO's composition: only prior_answer and distorted_image enter, ordered by origin, so the prior answer is
    first even when a distorted answer scored higher, and pairs go from it to a distorted answer; the reward
    spread does not drop a list (equal rewards included)."""
    rows = _leanpo_rows("low", 0.2, [0.9, 0.5]) + _leanpo_rows("tie", 1.0, [1.0]) + _leanpo_rows("high", 0.8, [0.1])
    config = {"list_origins": ["prior_answer", "distorted_image"], "order_by": "origin", "min_spread": 0.3, "min_margin": 0.2}
    result = _run(_tasks([("low", "vqa"), ("tie", "vqa"), ("high", "vqa")]), _scored(rows), **config)
    lists = {r["task_id"]: r for r in result.tables["listwise"].to_pylist()}
    assert lists["low"]["origins"] == ["prior_answer", "distorted_image", "distorted_image"]
    assert lists["low"]["rewards"] == [0.2, 0.9, 0.5]  # the real rewards, kept
    assert set(lists) == {"low", "tie", "high"}
    pairs = result.tables["pairs"].to_pylist()
    assert len(pairs) == 3
    assert {(p["chosen_origin"], p["rejected_origin"]) for p in pairs} == {("prior_answer", "distorted_image")}
    assert {p["task_id"]: p["rejected"] for p in pairs}["low"] == "low distorted 1"  # the last of the list: worse reward
    assert result.metrics["candidates_excluded_origin"] == 9


def test_ordered_by_origin_a_list_of_one_origin_is_dropped():
    rows = [("t", "t:d0", "distorted_image", "a", 0.1), ("t", "t:d1", "distorted_image", "b", 0.9)]
    result = _run(_tasks([("t", "vqa")]), _scored(rows), order_by="origin")
    assert result.metrics["dropped_single_origin"] == 1 and result.tables["listwise"].num_rows == 0


def test_ordered_by_reward_prior_answers_rank_by_reward_and_win_ties():
    """The default order: a prior answer is one more candidate, ranked by its reward; on a tie it comes right
    after the ground truth (DEFAULT_ORIGIN_ORDER)."""
    cands = [cand("p", 0.5, "policy"), cand("prior", 0.5, "prior_answer"), cand("gt", 0.5, "ground_truth"),
             cand("d", 0.7, "distorted_image")]
    assert ids(order_candidates(cands, DEFAULT_ORIGIN_ORDER)) == ["d", "gt", "prior", "p"]
