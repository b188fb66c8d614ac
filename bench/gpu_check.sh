#!/usr/bin/env bash
# The prepared GPU check: one machine with one CUDA GPU, no network, maybe no Ray and no vLLM.
# In under 8 minutes: the demo through the hf backend on CUDA in bf16, a few LoRA steps, then
# sampling tokens/s, training tokens/s, peak GPU memory and the CPU/GPU log-prob agreement on the
# same tokens (bench/gpu_check.py). It says what it skipped and why.
#
#   bash bench/gpu_check.sh [OUT_DIR]        # default OUT_DIR: ${OUT:-/tmp/gpu_check}
#
# Python packages the machine lacks can travel as wheels in .whl/ at the repo root (pure-Python or
# manylinux x86_64 wheels for the machine's Python); they are installed with --no-index into a
# private folder, never into the system's site-packages.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-/tmp/gpu_check}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 NO_ALBUMENTATIONS_UPDATE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; else echo "skipped: nvidia-smi not found"; fi
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site" && echo "installed $(ls .whl/*.whl | wc -l) carried wheels into /tmp/gpu_check_site"
fi

missing=()
for module in torch transformers peft pyarrow PIL pydantic typer rapidfuzz scipy albumentations cv2 matplotlib tqdm psutil; do
    "$PY" -c "import $module" 2>/dev/null || missing+=("$module")
done
if ((${#missing[@]})); then
    echo "FAIL: the GPU check needs these Python modules, missing here: ${missing[*]}"
    echo "      carry them as wheels in .whl/ (see the device notes in README.md, 'GPU check')"
    exit 1
fi
"$PY" -c "import ray" 2>/dev/null || echo "skipped: Ray is not installed (stages run in-process)"
"$PY" -c "import vllm" 2>/dev/null || echo "skipped: vLLM is not installed (vllm backends not run)"

timeout 450 "$PY" bench/gpu_check.py --out "$OUT_DIR" "${@:2}"
rc=$?
[ $rc -eq 124 ] && echo "FAIL: the check ran past its 450 s limit"
exit $rc
