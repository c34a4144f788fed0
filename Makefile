# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the suite).
# Both build the pinned environment first (`make setup`, a no-op when it is already up to date).
PY := .venv/bin/python

.PHONY: setup demo test test-long bench-quant bench-formats bench-vram bench-gpu bench-proving-ground gpu-kit
.PHONY: bench-cluster

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

# Three lanes (README, "Supported versions"): the pinned one runs the whole suite (torch 2.9.1, transformers
# 4.57.1, ComfyUI 0.3.75); the ComfyUI 0.8.0 lane the host, node and packaging tests on the same packages (when
# ../shared/hosts/comfyui-0.8.0.tar.gz is there: make setup then builds it); the newest lane everything but the
# page test on the newest torch, transformers and torchao (constraints-newest.txt), on ComfyUI 0.8.0 when there.
test: setup
	$(PY) -m pytest -m "not long"
	@if [ -x .venv-080/bin/python ]; then echo "test: the ComfyUI 0.8.0 lane"; \
	  LTX2_COMFYUI=build/comfyui-080 .venv-080/bin/python -m pytest -m "not long" tests/host tests/unit/nodes tests/unit/pack; fi
	@echo "test: the newest lane"
	LTX2_COMFYUI=$$(cat .venv-newest/host) .venv-newest/bin/python -m pytest -m "not long" tests/unit tests/host

# Slow tests (the wide preset); .ci/run runs them too.
test-long: setup
	$(PY) -m pytest -m long

# Quantization benchmark on the wide preset: prints a table, writes bench/results/quant.{json,png}.
bench-quant: setup
	$(PY) bench/quant.py

# The files a ComfyUI user has (single-file Gemma in bf16 / fp8 / nvfp4, the fp8 checkpoint in ComfyUI's three
# spellings): load seconds, ledger peak, resident bytes, error; writes bench/results/formats.json.
bench-formats: setup
	$(PY) bench/formats.py --preset wide

# Cluster benchmark on the tiny bundle: jobs/minute with 1 and 2 workers, the queue's overhead per job against
# ComfyUI directly (README, "Scaling past one GPU"); writes bench/results/cluster.json.
bench-cluster: setup
	$(PY) bench/cluster.py $(ARGS)

# Residency benchmark on the wide preset: cold_start, persistent, streamed; writes bench/results/vram.{json,png}.
bench-vram: setup
	$(PY) bench/vram.py

# The seed article's table on the real LTX-2.3 files, on a CUDA GPU, through a ComfyUI host; writes
# bench/results/gpu_a2v.{json,png}. E.g. make bench-gpu ARGS="--models-dir /models --policies fp8_cast"
bench-gpu: setup
	$(PY) bench/gpu_a2v.py $(ARGS)

# The proving ground: the two-stage A2V on the `full` bundle (the whole 22B transformer, random weights), per
# policy and residency, without a ComfyUI host, on a CUDA GPU; writes bench/results/proving_ground.{md,json,png}.
# E.g. make bench-proving-ground ARGS="--models-dir /scratch/ltx2-full --make-bundle --policies fp8_cast"
bench-proving-ground: setup
	$(PY) bench/proving_ground.py $(ARGS)

# Wheels for the proving ground on a GPU machine without a package registry (README, "GPU benchmarks"):
# make gpu-kit ARGS="--missing <what 'python3 bench/gpu_kit.py check' printed there> --torch 2.11 --python 3.12"
gpu-kit: setup
	$(PY) tools/make_gpu_kit.py $(ARGS)

# The style the README declares: ruff's checks and its formatting (configured in pyproject.toml).
.PHONY: lint
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
