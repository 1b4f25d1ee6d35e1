# Odin. `make run` and `make test` are all a fresh machine needs (Python 3.11 and network access to PyPI).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE_OUT ?= out/sample

.PHONY: help venv run test lint bench clean

help:
	@echo "make run    - install into $(VENV) and run the pipeline on the bundled sample photos"
	@echo "make test   - the whole test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - benchmarks (prints tables; see bench/)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	rm -rf $(SAMPLE_OUT)
	$(BIN)/python scripts/run.py run --input data/sample/photos --deployments data/sample/deployments.csv \
		--output $(SAMPLE_OUT) --budget 25

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check wildlife scripts tests bench

bench: $(STAMP)
	$(BIN)/python bench/stage0.py
	$(BIN)/python bench/events.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
