# rtseg developer commands. Everything a fresh clone needs is installed from here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rtseg-installed
# Real data for the tests and benchmarks: override with RTSEG_DATA=/path/holding/camvid.
export RTSEG_DATA ?= $(abspath ../shared/datasets)

.PHONY: install test bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

bench: install
	$(VENV)/bin/rtseg bench --suite --threads 2 --calibrate camvid:train:32 --json bench/results.json --markdown bench/results.md

demo: install
	$(VENV)/bin/rtseg predict samples/camvid --out demo_out --gif
	@echo "overlays, masks and demo_out/predictions.gif written to demo_out/"

clean:
	rm -rf demo_out .pytest_cache build *.egg-info
