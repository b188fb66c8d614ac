"""What the viewer shows of one task, built from a run's tables: pure functions, no files.

A task record holds the task's ground truth, its ranked list (best first, with each response's
parsed boxes, reward detail and, for hallucinations, a diff against the ground truth), the scored
candidates that did not make the list (and why), the pairs and groups made from the list, and the
quarantine rows that name the task. Tasks without a list say why: filtered by rank (the reason is
recomputed with rank's own functions), dropped by a review, or no candidates left (quarantined).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import pyarrow as pa

from data_schemas.tables import Origin
from stages.lib.boxes import parse_boxes
from stages.rank import NORMALIZERS, Candidate, RankConfig, RankedList, rank_candidates

__all__ = [
    "STATUSES",
    "TASK_COLUMNS",
    "SCORED_COLUMNS",
    "RunTables",
    "text_diff",
    "quarantine_task_id",
    "RecordBuilder",
]

# Why a task has or has not a list; the viewer's "status" filter.
STATUSES: tuple[str, ...] = ("ranked", "filtered", "review_dropped", "no_candidates")
TASK_COLUMNS = ["task_id", "task_type", "width", "height", "prompt", "answer", "boxes", "answers", "choices", "source", "meta"]
SCORED_COLUMNS = [
    "task_id", "cand_id", "origin", "text", "n_tokens", "logprob_sum", "finish_reason", "distortion",
    "reward", "reward_kind", "parse_ok", "detail",
]
_META_CHARS = 600  # a task's meta / a quarantine record is shown cut to this many characters
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass
class RunTables:
    """The tables a viewer is made from (images are read separately, shard by shard)."""

    tasks: pa.Table  # TASK_COLUMNS (+ split when the run has one)
    scored: pa.Table
    listwise: pa.Table
    pairs: pa.Table
    groups: pa.Table
    quarantine: pa.Table
    rank: RankConfig = field(default_factory=RankConfig)
    box_format: str = "auto"  # how the policy's answers write boxes
    candidate_box_format: str = "pixel"  # how the pipeline wrote its own candidates (ground truth, hallucinations)
    review_drops: frozenset[str] = frozenset()  # task ids a review file dropped


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _cut(text: str | None, limit: int = _META_CHARS) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def text_diff(reference: str, text: str) -> list[list[str]]:
    """Return ``text`` as a diff against ``reference``: ``[op, piece]`` with op ``=`` (same), ``-`` (only in
    the reference) or ``+`` (only in ``text``); by word, or by character when the reference is one word."""
    from rapidfuzz.distance import Levenshtein

    split = list if " " not in reference.strip() else _TOKEN.findall
    a, b = split(reference), split(text)
    ops: list[list[str]] = []
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(a, b):
        if tag == "equal":
            ops.append(["=", "".join(a[i1:i2])])
            continue
        if i2 > i1:
            ops.append(["-", "".join(a[i1:i2])])
        if j2 > j1:
            ops.append(["+", "".join(b[j1:j2])])
    return ops


def quarantine_task_id(row: dict[str, Any], task_ids: set[str]) -> str | None:
    """Return the task a quarantine row is about, when it names one (its record's task_id, its row_ref, or
    the task part of a ``task_id:…`` candidate id); ``None`` for rows without a task (bad corpus lines)."""
    record = _json(row.get("record"))
    if isinstance(record, dict) and record.get("task_id") in task_ids:
        return record["task_id"]
    ref = row.get("row_ref") or ""
    if ref in task_ids:
        return ref
    head = ref.split(":", 1)[0]
    return head if head in task_ids else None


def _candidate_view(row: dict[str, Any], task: dict[str, Any], tables: RunTables) -> dict[str, Any]:
    """One scored candidate as the task page shows it (boxes read in the format they were written in)."""
    detail = _json(row["detail"]) or {}
    distortion = _json(row["distortion"]) or {}
    boxes = detail.get("boxes") if isinstance(detail, dict) else None
    if boxes is None and task["task_type"] == "grounding":
        ours = row["origin"] in (Origin.GROUND_TRUTH, Origin.HALLUCINATION)
        fmt = tables.candidate_box_format if ours else tables.box_format
        boxes = parse_boxes(row["text"] or "", task["width"], task["height"], fmt)
    view = {
        "cand_id": row["cand_id"],
        "origin": row["origin"],
        "text": row["text"],
        "score": row["reward"],
        "parse_ok": row["parse_ok"],
        "kind": row["reward_kind"],
        "detail": detail,
        "boxes": boxes or [],
        "finish": row["finish_reason"],
        "logprob": row["logprob_sum"],
        "n_tokens": row["n_tokens"],
    }
    if distortion:
        view["distortion"] = {k: distortion[k] for k in ("name", "label", "kinds", "mode", "image") if k in distortion}
    if row["origin"] == "hallucination" and task.get("answer") is not None:
        view["diff"] = text_diff(task["answer"], row["text"] or "")
    return view


def _positions(texts: list[str], wanted: Iterable[str]) -> list[int | str]:
    """List positions of ``wanted`` texts (the text itself when it is not in the list)."""
    index = {}
    for i, t in enumerate(texts):
        index.setdefault(t, i)
    return [index.get(t, t) for t in wanted]


def _why_not_listed(cand: dict[str, Any], listed: dict[str, dict], rank: RankConfig) -> str:
    """Why a scored candidate of a ranked task is not in its list: its origin is not listed, a duplicate
    text, or cut by the cap."""
    if cand["origin"] not in rank.list_origins:
        return "origin not listed"
    normalize = NORMALIZERS[rank.dedupe]
    if normalize is not None:
        key = normalize(cand["text"] or "")
        if any(normalize(c["text"] or "") == key for c in listed.values()):
            return "duplicate"
    return "capped" if len(listed) >= rank.max_list_len else "not kept"


def _filter_reason(cands: list[dict[str, Any]], rank: RankConfig) -> str:
    """The reason rank gives for not listing these candidates (recomputed with rank's own functions)."""
    result = rank_candidates(
        [Candidate(c["cand_id"], c["origin"], c["text"] or "", c["score"], c["logprob"], c["n_tokens"])
         for c in cands if c["origin"] in rank.list_origins],
        origin_order=rank.origin_order,
        normalize=NORMALIZERS[rank.dedupe],
        min_spread=rank.min_spread,
        max_list_len=rank.max_list_len,
    )
    return "not kept" if isinstance(result, RankedList) else str(result)


def _group_rows(table: pa.Table, key: str = "task_id") -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table.to_pylist():
        out[row[key]].append(row)
    return out


class RecordBuilder:
    """Builds task records: the lookups over the run's tables are made once, then one record per task."""

    def __init__(self, tables: RunTables):
        self.tables = tables
        self.task_ids = set(tables.tasks["task_id"].to_pylist())
        self.scored = _group_rows(tables.scored.select(SCORED_COLUMNS))
        self.lists = {
            r["task_id"]: r for r in tables.listwise.select(["task_id", "cand_ids", "rewards", "ref_logps"]).to_pylist()
        }
        self.pairs = _group_rows(tables.pairs.select(["task_id", "chosen", "rejected", "margin"]))
        self.groups = _group_rows(tables.groups.select(["task_id", "chosen", "rejected"]))
        self.quarantine: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in tables.quarantine.to_pylist():
            tid = quarantine_task_id(row, self.task_ids)
            if tid is not None:
                self.quarantine[tid].append({k: row[k] for k in ("stage", "reason", "message", "row_ref")})

    def _ranked(self, tid: str, cands: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        row = self.lists.get(tid)
        if row is None:
            return []
        rewards = row["rewards"] or [None] * len(row["cand_ids"])
        refs = row["ref_logps"] or [None] * len(row["cand_ids"])
        return [
            {**cands[cid], "reward": reward, "ref_logp": ref}
            for cid, reward, ref in zip(row["cand_ids"], rewards, refs)
            if cid in cands
        ]

    def record(self, task: dict[str, Any]) -> dict[str, Any]:
        """Return the record of one ``tasks`` row (TASK_COLUMNS, optionally ``split``)."""
        tid = task["task_id"]
        rank = self.tables.rank
        cands = {row["cand_id"]: _candidate_view(row, task, self.tables) for row in self.scored.get(tid, [])}
        listed = self._ranked(tid, cands)
        in_list = {c["cand_id"]: c for c in listed}
        others = [{**c, "why": None} for cid, c in cands.items() if cid not in in_list]
        if tid in self.lists:
            status, reason = "ranked", None
            for c in others:
                c["why"] = _why_not_listed(c, in_list, rank)
        elif tid in self.tables.review_drops:
            status, reason = "review_dropped", "review"
        elif not cands:
            status, reason = "no_candidates", "no candidates reached rank"
        else:
            status, reason = "filtered", _filter_reason(list(cands.values()), rank)
        texts = [c["text"] for c in listed]
        return {
            "id": tid,
            "type": task["task_type"],
            "split": task.get("split"),
            "status": status,
            "reason": reason,
            "prompt": task["prompt"],
            "answer": task["answer"],
            "answers": task["answers"],
            "choices": task["choices"],
            "gt_boxes": task["boxes"] or [],
            "width": task["width"],
            "height": task["height"],
            "source": task["source"],
            "meta": _cut(task["meta"]),
            "list": listed,
            "others": others,
            "pairs": [
                {"chosen": _positions(texts, [p["chosen"]])[0], "rejected": _positions(texts, [p["rejected"]])[0],
                 "margin": p["margin"]}
                for p in self.pairs.get(tid, [])
            ],
            "groups": [
                {"chosen": _positions(texts, g["chosen"]), "rejected": _positions(texts, g["rejected"])}
                for g in self.groups.get(tid, [])
            ],
            "quarantine": self.quarantine.get(tid, []),
        }
