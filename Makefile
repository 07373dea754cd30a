# The README's two set-up commands:  `make demo` (the main job)  and  `make test` (the tests).
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ucat-installed

.PHONY: demo test install bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/ucat demo $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 CUDA_VISIBLE_DEVICES= $(PY) -m pytest -q $(ARGS)

bench-smoke: $(STAMP)
	HF_HUB_OFFLINE=1 CUDA_VISIBLE_DEVICES= $(PY) benchmarks/run_all.py --smoke

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
