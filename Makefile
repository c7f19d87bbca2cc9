# The two commands of the README: `make run` (install, build model and index on first run, serve)
# and `make test` (install, run the test suite). Everything installs into .venv with pinned versions.
# `make test-fast` runs every test that needs no embedding model (pytest -m "not slow"; well under a minute).
# `make screenshots` refreshes docs/screenshots/*.png from the browser test (tests never write them otherwise).
# `make bench [STAGES="latency report"]` runs the benchmarks and writes docs/benchmarks.md.
# `make train` relearns the shipped artefacts from training data only (needs ../shared and the indexes that
# `make bench STAGES="ingest quality"` builds): the question tuning (with the question bank), then the ranker on
# cross-fitted features, then the law router (bench/train_router.py) and the weights of the question handles
# (bench/train_handles.py), then the answer model
# (kb/answers/answer_models/; it prints AnswerParams' constants too), then the conversation models (follow-up
# ranker and gate). About two hours on two cores (the question tuning alone: six fits, 44 min).
VENV ?= .venv
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast check screenshots bench train

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/kb serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# ruff (lint) and mypy (types) over the product's packages; .ci/run runs it before the tests.
check: $(STAMP)
	$(BIN)/ruff check kb ingest server cli
	$(BIN)/mypy kb ingest server cli

screenshots: $(STAMP)
	KB_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -q tests/test_web.py -k screenshots

bench: $(STAMP)
	$(BIN)/python -m bench $(STAGES)

train: $(STAMP)
	$(BIN)/python -m bench.encoder_pack --bank
	# lr 1e-3, 3 epochs, one bank question per real one: chosen on the real questions' validation part by
	# bench.experiments.bank_tuning (bench/experiments/results/bank_tuning.json)
	$(BIN)/python -m bench.train_encoder --fit 0.001 3 --write
	$(BIN)/python -m bench.train_ranker --write
	$(BIN)/python -m bench.train_router --write
	$(BIN)/python -m bench.train_handles --write
	$(BIN)/python -m bench.calibrate_answerable --write
	$(BIN)/python -m bench.followup --fit
	$(BIN)/python -m bench.followup_gate
