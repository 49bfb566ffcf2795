# The two commands a new user needs: `make search` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-all search lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The whole suite, the tests marked slow included (a few large presets: about half a minute).
test: $(STAMP)
	NASBLOCKS_SLOW=1 $(BIN)/python -m pytest

test-all: test

search: $(STAMP)
	$(BIN)/nasblocks search search_spaces/resnet_like.yaml

lint: $(STAMP)
	$(BIN)/ruff check nasblocks tests benchmarks
	$(BIN)/ruff format --check nasblocks tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/presets_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
