# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the suite).
# Both build the pinned environment first (`make setup`, a no-op when it is already up to date).
PY := .venv/bin/python

.PHONY: setup demo test test-long bench-quant bench-vram

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest -m "not long"

# Slow tests (the wide preset); .ci/run runs them too.
test-long: setup
	$(PY) -m pytest -m long

# Quantization benchmark on the wide preset: prints a table, writes bench/results/quant.{json,png}.
bench-quant: setup
	$(PY) bench/quant.py

# Residency benchmark on the wide preset: cold_start, persistent, streamed; writes bench/results/vram.{json,png}.
bench-vram: setup
	$(PY) bench/vram.py
