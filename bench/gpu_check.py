"""The GPU check's measurements (run by bench/gpu_check.sh on a machine with one CUDA GPU).

Runs the demo pipeline in this process on CUDA in bf16 (hf backend; Ray when it is installed,
else in-process), training a few LoRA steps, then prints:
- sampling tokens/s (generated policy tokens / sample-stage seconds),
- training tokens/s (response tokens / optimizer-step seconds, from train_log.jsonl),
- peak GPU memory (torch.cuda.max_memory_allocated over the whole run),
- CPU/GPU log-prob agreement: the same responses scored by the reference scorer on the CPU in
  float32 and on the GPU in float32 and bf16 (max and mean absolute difference of the summed log-probs).

    python bench/gpu_check.py --out DIR [--model PATH] [--steps 8]

With no --model it builds the offline tiny VLM (nothing is downloaded). Every optional part it
cannot do (no Ray, no vLLM) is reported as `skipped: ...`, never silently left out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _pipeline_overrides(model: str, steps: int, device: str = "cuda") -> list[str]:
    """Demo config on ``device`` (cuda: bf16 everywhere), LoRA training for ``steps`` optimizer steps."""
    dtype = "bfloat16" if device == "cuda" else "float32"
    gpus = 0.25 if device == "cuda" else 0.0
    overrides = [f'sample.engine.model="{model}"', "train.lora=true", f"train.max_steps={steps}", "run.progress=false", "run.export=false"]
    for stage in ("sample", "perturb", "reference"):
        overrides += [f'{stage}.engine.device="{device}"', f'{stage}.engine.dtype="{dtype}"', f"{stage}.engine.num_gpus={gpus}"]
    overrides += [f'train.device="{device}"', f'train.dtype="{dtype}"', f"train.num_gpus={gpus}"]
    return overrides + ([f"ray.num_gpus=1"] if device == "cuda" else [])


def _sampling_rate(store) -> tuple[float, float]:
    """(policy tokens generated, sample-stage seconds summed over shards)."""
    import pyarrow.compute as pc

    manifest = store.read_manifest("sample")
    seconds = sum(rec.seconds for rec in manifest.shards.values())
    candidates = store.read_table("sample", "candidates", "candidates", columns=["origin", "n_tokens"])
    policy = candidates.filter(pc.equal(candidates["origin"], "policy"))
    return float(pc.sum(policy["n_tokens"]).as_py() or 0), seconds


def _training_rate(log_path: Path) -> tuple[float, float]:
    """(response tokens, optimizer-step seconds) summed over train_log.jsonl."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return sum(r.get("tokens") or 0 for r in rows), sum(r.get("seconds") or 0 for r in rows)


def _logprob_agreement(model: str, store, device: str = "cuda") -> dict[str, float]:
    """Score the same (image, prompt, response) triples on CPU fp32, GPU fp32 and GPU bf16 (``device`` cpu: CPU thrice)."""
    from stages.reference import SCORERS, setup
    from stages.reference.config import ReferenceConfig
    from stages.train.data import load_lists

    tasks = store.read_table("ingest", "tasks", "tasks")
    lists = store.read_table("rank", "listwise", "listwise")
    examples = load_lists(tasks, lists)[0][:8]
    triples = [(ex.image(), ex.prompt, text) for ex in examples for text in ex.responses]
    sums = {}
    for name, where, dtype in (("cpu_fp32", "cpu", "float32"), ("gpu_fp32", device, "float32"), ("gpu_bf16", device, "bfloat16")):
        config = ReferenceConfig(model=model, device=where, dtype=dtype)
        sums[name] = [s for s, _ in SCORERS["hf"](setup(config), triples, config)]
    out: dict[str, float] = {"responses": float(len(triples))}
    for name in ("gpu_fp32", "gpu_bf16"):
        diffs = [abs(a - b) for a, b in zip(sums["cpu_fp32"], sums[name])]
        out[f"{name}_max_abs_diff"] = max(diffs) if diffs else float("nan")
        out[f"{name}_mean_abs_diff"] = sum(diffs) / len(diffs) if diffs else float("nan")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder (run folder, tiny model, results.json)")
    parser.add_argument("--model", default="", help="a local model folder (default: build the offline tiny VLM)")
    parser.add_argument("--steps", type=int, default=8, help="LoRA optimizer steps to train")
    parser.add_argument("--cpu-smoke", action="store_true", help="run the same plumbing on the CPU (no GPU figures): checks the script itself")
    args = parser.parse_args()

    import torch

    device = "cpu" if args.cpu_smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("FAIL: torch sees no CUDA GPU")
        return 1
    if device == "cuda":
        print(f"gpu: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    else:
        print(f"cpu smoke run (no GPU figures), torch {torch.__version__}")
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if not model:
        from stages.lib.models import build_tiny_vlm

        model = str(build_tiny_vlm(args.out / "tiny-vlm"))
    use_ray = _have("ray")
    print("ray: installed, stages run on a local Ray instance" if use_ray else "skipped: Ray is not installed, stages run in-process (--no-ray)")
    print("vllm: installed but not exercised by this check (hf backend only)" if _have("vllm") else "skipped: vLLM is not installed, the vllm backends were not run")

    from pipeline.config import load_config
    from pipeline.runner import run_pipeline
    from pipeline.store import RunStore

    cfg = load_config(ROOT / "pipeline.toml", _pipeline_overrides(model, args.steps, device))
    run_dir = args.out / "run"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    run_pipeline(cfg, run_dir, force=["ingest"], use_ray=use_ray, progress=False)
    wall = time.perf_counter() - started
    store = RunStore(run_dir)
    results: dict[str, float | str] = {"model": model, "pipeline_seconds": round(wall, 2)}
    if use_ray:
        results["peak_gpu_memory_note"] = "model stages ran in Ray actors: this process's peak excludes them"
    peak = (lambda: round(torch.cuda.max_memory_allocated() / 2**20, 1)) if device == "cuda" else (lambda: float("nan"))
    results["peak_gpu_memory_mib"] = peak()
    tokens, seconds = _sampling_rate(store)
    results["sampling_tokens_per_s"] = round(tokens / seconds, 1) if seconds else float("nan")
    tokens, seconds = _training_rate(run_dir / "train" / "artifacts" / "train_log.jsonl")
    results["training_tokens_per_s"] = round(tokens / seconds, 1) if seconds else float("nan")
    try:
        results.update(_logprob_agreement(model, store, device))
    except (ImportError, AttributeError) as exc:
        results["logprob_agreement"] = f"skipped: {type(exc).__name__}: {exc}"
    results["peak_gpu_memory_mib_incl_agreement"] = peak()
    for key, value in results.items():
        print(f"{key}: {value}")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
