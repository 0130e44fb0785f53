# heddle: make demo | make test | make lint | make soak
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test unit integration lint demo soak clean node-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .

NODE_DIR := tests/integration/node

node-deps: $(NODE_DIR)/node_modules/.package-lock.json

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --prefer-offline

test: venv lint node-deps
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

unit: venv
	$(BIN)/python -m pytest -q -n 2 tests/unit

integration: venv
	$(BIN)/python -m pytest -q tests/integration

demo: venv
	$(BIN)/heddle demo heart-disease

soak: venv
	HEDDLE_SOAK=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/unit/raft -k soak -s

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
