# The README's two commands: `make serve` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKPOINT ?= checkpoints/default
HOST ?= 0.0.0.0
PORT ?= 8000
# Your own text: `make serve CORPUS=path/to/texts` (a text file, a folder of .txt/.jsonl files,
# or their .gz) trains a model of it into checkpoints/<its name>, once, and serves that;
# TRAIN_ARGS passes more model.train flags (e.g. TRAIN_ARGS="--max-tokens 200000").
CORPUS ?=
TRAIN_ARGS ?=
ifneq ($(strip $(CORPUS)),)
CHECKPOINT := checkpoints/$(firstword $(subst ., ,$(notdir $(abspath $(CORPUS)))))
CORPUS_ARGS := --corpus "$(CORPUS)"
endif

.PHONY: serve test lint train-default train-backward clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[train,dev]"
	touch $(STAMP)

# Train the default model (or, with CORPUS, one of your text) unless a finished checkpoint
# exists (an interrupted run is resumed),
# through the same entry point the compose trainer service runs.
train-default: $(STAMP)
	NEXTWORD_MODEL_DIR=$(CHECKPOINT) $(BIN)/python -m deploy.train_if_missing $(CORPUS_ARGS) $(TRAIN_ARGS)

# The default preset read right to left (a model of the word before a text), beside the default
# one; `make serve` keeps serving the forward model.
train-backward: $(STAMP)
	$(BIN)/python -m model.train --preset default --direction backward --output checkpoints/backward

serve: train-default
	NEXTWORD_MODEL_DIR=$(CHECKPOINT) NEXTWORD_HOST=$(HOST) NEXTWORD_PORT=$(PORT) $(BIN)/python -m app

lint: $(STAMP)
	$(BIN)/ruff check model app tests bench deploy
	$(BIN)/ruff format --check model app tests bench deploy
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache .mypy_cache
