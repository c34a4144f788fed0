# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the suite).
# `make demo` builds the pinned environment only (.venv and .comfyui: what it runs); `make test` every test lane
# (`make setup`). Both are no-ops when what they build is up to date.
PY := .venv/bin/python

.PHONY: setup setup-demo demo test test-long bench-quant bench-formats bench-vram bench-gpu bench-proving-ground gpu-kit
.PHONY: bench-cluster bench-core bench-upcast lint

setup:
	@bash tools/setup_env.sh test

setup-demo:
	@bash tools/setup_env.sh demo

# The pinned lane's ComfyUI, whatever LTX2_COMFYUI says.
demo: setup-demo
	env -u LTX2_COMFYUI $(PY) tools/demo.py

# The lanes (README, "Supported versions"): the pinned one runs the whole suite (torch 2.9.1, transformers 4.57.1,
# ComfyUI 0.3.75 from the registry); the newest lane, on the newest torch, transformers, torchao and comfy-kitchen
# (constraints-newest.txt) and the same ComfyUI, the unit tests and NEWEST_HOST: the host tests whose outcome
# depends on those packages (the workflow under each policy, the files ComfyUI users have, the low-bit layouts, the
# reference's frames); the host tests of the pack's own checks (hostile inputs, refusals, the queue-time checks)
# run the same code in both lanes and run once. LTX2_COMFYUI=/path/to/ComfyUI adds a lane running the unit, host and
# page tests on that source tree and its frontend (.venv-host: tools/setup_lane_host.sh); the other two run on 0.3.75.
NEWEST_HOST = tests/host/test_host.py tests/host/test_a2v_workflow.py tests/host/test_comfy_files_host.py \
	tests/host/test_low_bit_host.py tests/host/test_fidelity_host.py
test: setup lint
	env -u LTX2_COMFYUI $(PY) -m pytest -m "not long"
	@echo "test: the newest lane"
	env -u LTX2_COMFYUI .venv-newest/bin/python -m pytest -m "not long" tests/unit $(NEWEST_HOST)
	@if [ -n "$$LTX2_COMFYUI" ]; then echo "test: the lane for the ComfyUI in $$LTX2_COMFYUI"; \
	  .venv-host/bin/python -m pytest -m "not long" tests/unit tests/host tests/page tests/bench/test_template_prompt.py; fi

# Slow tests (the wide preset); .ci/run runs them too.
test-long: setup
	env -u LTX2_COMFYUI $(PY) -m pytest -m long

# Quantization benchmark on the wide preset: prints a table, writes bench/results/quant.{json,png}.
bench-quant: setup-demo
	$(PY) bench/quant.py

# The files a ComfyUI user has (single-file Gemma in bf16 / fp8 / nvfp4, the fp8 checkpoint in ComfyUI's three
# spellings): load seconds, ledger peak, resident bytes, error; writes bench/results/formats.json.
bench-formats: setup-demo
	$(PY) bench/formats.py --preset wide

# Cluster benchmark on the tiny bundle: jobs/minute with 1 and 2 workers, the queue's overhead per job against
# ComfyUI directly (docs/api-and-cluster.md); writes bench/results/cluster.json.
bench-cluster: setup
	$(PY) bench/cluster.py $(ARGS)

# Residency benchmark on the wide preset: cold_start, persistent, streamed; writes bench/results/vram.{json,png}.
bench-vram: setup-demo
	$(PY) bench/vram.py

# float32 compute with bf16 / fp8 weights on a CPU: seconds per step with the scratch buffer, with a new tensor per
# upcast copy, and with float32 weights (core's way); prints a table (docs/benchmarks.md).
bench-upcast: setup-demo
	$(PY) bench/upcast.py

# Side by side with ComfyUI's LTX-2.3 template (docs/benchmarks.md): the pack's graphs and video_ltx2_3_ia2v on the
# same bundle, inputs and seed, on the ComfyUI tree in LTX2_COMFYUI (0.16 or later) run by LTX2_COMFYUI_PYTHON
# (default .venv-host/bin/python, made here when unset); writes bench/results/core_<preset>.{json,png}.
# E.g. LTX2_COMFYUI=/path/to/ComfyUI make bench-core ARGS="--preset tiny"
bench-core: setup-demo
	@if [ -z "$$LTX2_COMFYUI" ]; then \
	  echo "bench-core: set LTX2_COMFYUI to the ComfyUI tree to compare with (0.16 or later)" >&2; exit 2; fi
	@if [ -z "$$LTX2_COMFYUI_PYTHON" ]; then bash tools/setup_lane_newest.sh && \
	  bash tools/setup_lane_host.sh "$$LTX2_COMFYUI"; fi
	$(PY) bench/core.py $(ARGS)

# The seed article's table on the real LTX-2.3 files, on a CUDA GPU, through a ComfyUI host; writes
# bench/results/gpu_a2v.{json,png}. E.g. make bench-gpu ARGS="--models-dir /models --policies fp8_cast"
bench-gpu: setup-demo
	$(PY) bench/gpu_a2v.py $(ARGS)

# The proving ground: the two-stage A2V on the `full` bundle (the whole 22B transformer, random weights), per
# policy and residency, without a ComfyUI host, on a CUDA GPU; writes bench/results/proving_ground.{md,json,png}.
# E.g. make bench-proving-ground ARGS="--models-dir /scratch/ltx2-full --make-bundle --policies fp8_cast"
bench-proving-ground: setup-demo
	$(PY) bench/proving_ground.py $(ARGS)

# Wheels for the proving ground on a GPU machine without a package registry (docs/development.md, "GPU benchmarks"):
# make gpu-kit ARGS="--missing <what 'python3 bench/gpu_kit.py check' printed there> --torch 2.11 --python 3.12"
gpu-kit: setup-demo
	$(PY) tools/make_gpu_kit.py $(ARGS)

# The style the README declares: ruff's checks and its formatting (configured in pyproject.toml); make test runs it.
lint: setup-demo
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
