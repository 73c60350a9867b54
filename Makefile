.DEFAULT_GOAL := help
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: help setup run test test-unit lint format bench screenshots clean

help: ## list the targets
	@grep -E '^[a-z]+:.*##' Makefile | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install floorwatch with its dev tools (quick when nothing changed)

run: setup ## the full local stack with the demo scenario and the wall board
	.venv/bin/floorwatch up

test: setup lint ## ruff, mypy and pytest
	$(PY) -m pytest

test-unit: setup ## the pure tier alone (no broker, Redis or browser), in seconds
	$(PY) -m pytest -q -m "not integration and not e2e and not faults"

lint: setup ## ruff and mypy; changes nothing
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: setup ## rewrite the code in the house style
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: setup ## benchmarks; JSON results in bench/results/
	$(PY) -m bench.run

screenshots: setup ## refresh docs/board-*.png: the board in Chromium during a surge and after it
	BOARD_SCREENSHOTS_DIR=$(CURDIR)/docs $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_board.py -k screenshots

clean: ## remove the virtualenv and caches
	rm -rf .venv .mypy_cache .pytest_cache .ruff_cache
