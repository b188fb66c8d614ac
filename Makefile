# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TINY_MODEL := runs/_models/tiny-vlm-warm

.PHONY: install run test bench reproduce demo-policy clean gpu-constraints

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## the demo policy: the tiny VLM warm-started on a synthetic split (built once, then reused from runs/_models/)
demo-policy: $(STAMP)
	$(BIN)/perpo-pipeline make-tiny-model --out $(TINY_MODEL) --warm-start

## run the whole pipeline on the bundled demo corpus with the tiny offline model (CPU), eval table at the end
run: $(STAMP) demo-policy
	$(BIN)/perpo-pipeline run --config pipeline.toml
	@echo
	@echo "outputs in runs/demo/:"
	@echo "  report/          stats.json and plots (reward histograms, list sizes, distortion gallery)"
	@echo "  export/          Hub-ready dataset (README card + data/{listwise,pairs,groups}); publish with perpo-pipeline publish"
	@echo "  viewer/          open runs/demo/viewer/index.html in a browser (no server): filter, inspect, flag lists, download review.jsonl"
	@echo "  train/artifacts/ trained model (model/), checkpoints, train_log.jsonl"
	@echo "  report/eval.*    held-out eval: starting policy vs trained model (json, png, txt; benchmarks.md for lmms-eval / VLMEvalKit)"
	@echo "  quarantine/      rows set aside, with their reasons (present only when there are any)"

## run the test suite (first: the GPU constraint set still resolves; skipped offline)
test: $(STAMP)
	$(BIN)/python tools/check_gpu_constraints.py
	$(BIN)/python -m pytest -q

## re-resolve constraints-gpu.txt from vLLM's own pins (needs the package index)
gpu-constraints: $(STAMP)
	$(BIN)/python tools/check_gpu_constraints.py --write

## every loss from the demo policy on the same data, 3 seeds, held-out eval; table and chart into bench/RESULTS.md
reproduce: $(STAMP) demo-policy
	$(BIN)/python bench/reproduce.py

## run the benchmarks (by hand, not in CI); figures go to bench/RESULTS.md
bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf runs/demo
