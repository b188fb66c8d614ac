"""One listwise training step over N responses vs the N/2 pairwise DPO steps that cover the same responses.

Both go through the train stage's own micro-step (render prompt, batched forward, loss, backward)
and an AdamW step, on the offline tiny VLM on CPU. Prints response tokens/s for each and the ratio,
once with the shared prompt pass (the default: a list's prompt and image run once) and once with
full sequences (every response re-runs the prompt), so the batching gain shows on its own too.

    .venv/bin/python bench/bench_train.py [--n 8] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = "red green blue circle square triangle left right small large one two three the a box".split()


def _image_cell():
    from PIL import Image

    from data_schemas.images import encode_image_cell

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buf, format="PNG")
    return encode_image_cell(buf.getvalue(), "bench.png")


def _responses(n: int, length: int) -> list[str]:
    import random

    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(length)) for _ in range(n)]


def _example(responses: list[str], rewards: list[float]):
    from stages.train.data import ListExample

    return ListExample(
        task_id="bench", prompt="Describe the shape and its colour.", image_cell=_image_cell(), responses=responses,
        rewards=rewards, origins=["policy"] * len(responses), ref_logps=[0.0] * len(responses),
        ref_n_tokens=None,
    )


def _timed_step(model, processor, optimizer, lists, config) -> tuple[float, float]:
    """Seconds and response tokens of one optimizer step made of one micro-step per list."""
    from stages.train.loop import _micro_step
    from stages.train.scorer import ListScorer

    scorer = ListScorer(model, processor, config.forward_batch_size, config.share_prompt)

    t0 = time.perf_counter()
    tokens = 0.0
    for ex in lists:
        tokens += _micro_step(scorer, [ex], config, 1.0)["tokens"]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, tokens


def _compare(model, processor, optimizer, listwise, pairwise, perpo, dpo, repeats: int, n: int) -> None:
    _timed_step(model, processor, optimizer, listwise, perpo)  # warm-up
    _timed_step(model, processor, optimizer, pairwise, dpo)
    runs = {"listwise": [], "pairwise": []}
    for _ in range(repeats):
        runs["listwise"].append(_timed_step(model, processor, optimizer, listwise, perpo))
        runs["pairwise"].append(_timed_step(model, processor, optimizer, pairwise, dpo))
    rates = {}
    for name, results in runs.items():
        seconds = min(s for s, _ in results)  # the least-disturbed run: the machine is shared
        tokens = results[0][1]
        rates[name] = tokens / seconds
        steps = 1 if name == "listwise" else len(pairwise)
        print(f"{name:9s}: {steps} step(s) over {n} responses, {tokens:.0f} response tokens, "
              f"best of {len(results)} {seconds * 1000:.1f} ms -> {rates[name]:.0f} tokens/s")
    print(f"ratio listwise / pairwise tokens/s: {rates['listwise'] / rates['pairwise']:.2f}x (target >= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="responses per list (even)")
    parser.add_argument("--length", type=int, default=12, help="words per response")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()

    import torch

    from stages.vlm.engine_config import EngineConfig

    from stages.vlm.load import load_vlm
    from stages.lib.models.tiny_vlm import build_tiny_vlm
    from stages.train.config import TrainConfig

    torch.set_num_threads(args.threads)
    model_dir = build_tiny_vlm(Path(tempfile.mkdtemp()) / "tiny")
    model, processor = load_vlm(EngineConfig(model=str(model_dir), device="cpu"), "bench")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    responses = _responses(args.n, args.length)
    rewards = [1 - i / args.n for i in range(args.n)]
    listwise = [_example(responses, rewards)]
    half = args.n // 2  # pair i with i + N/2: every response appears once
    pairwise = [_example([responses[i], responses[i + half]], [rewards[i], rewards[i + half]]) for i in range(half)]
    for share in (True, False):
        perpo = TrainConfig(loss="perpo", forward_batch_size=args.n, share_prompt=share)
        dpo = TrainConfig(loss="dpo", forward_batch_size=2, share_prompt=share)
        print(f"-- {'shared prompt pass' if share else 'full sequences'} (share_prompt={share})")
        _compare(model, processor, optimizer, listwise, pairwise, perpo, dpo, args.repeats, args.n)


if __name__ == "__main__":
    main()
