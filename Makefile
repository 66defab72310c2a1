# Two commands for a newcomer (both idempotent):
#   make demo   set everything up in .venv, then run the main job
#   make test   set everything up in .venv, then run the linter and the test suite
# Exact versions come from constraints.txt (the package itself declares ranges in pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := constraints.txt
# The stamp is rebuilt (and the extension recompiled) whenever the build inputs change.
BUILD_INPUTS := setup.py pyproject.toml $(CONSTRAINTS) softpool_video/_buildinfo.py softpool_video/_version.py \
	$(wildcard softpool_video/csrc/*.* softpool_video/csrc/*/*.*)

.PHONY: setup demo test lint bench gpu-check wheel clean

setup: $(VENV)/.installed

$(VENV)/.installed: $(BUILD_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade -c $(CONSTRAINTS) pip setuptools wheel
	# torch first: the extension build imports it (no build isolation, no second 5 GB copy)
	$(PIP) install --quiet -c $(CONSTRAINTS) torch torchvision
	$(PIP) install --quiet -c $(CONSTRAINTS) --no-build-isolation -e '.[dev]'
	$(PY) -c "import softpool_video.ops as o; print('softpool_video extension:', o.extension_info())"
	touch $@

demo: setup
	$(VENV)/bin/softpool-demo

lint: setup
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collects no tests; say so loudly rather than failing on a missing suite.
test: lint
	$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo 'pytest collected no tests'; status=0; fi; exit $$status

bench: setup
	$(VENV)/bin/softpool-bench op

# On a machine with a GPU: every CUDA test, the CUDA operator benchmark and one SlowFast training
# step, in one report (bench_results/gpu_check.md). Without a GPU it says so and fails.
gpu-check: setup
	$(VENV)/bin/softpool-bench gpu-check

# A wheel for this environment's torch in dist/ (install it where the same torch is installed).
wheel: setup
	$(PIP) wheel --no-build-isolation --no-deps -w dist .

clean:
	rm -rf build dist *.egg-info softpool_video/_C*.so
