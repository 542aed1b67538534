# nasflow: `make setup` once, then `source .venv/bin/activate`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST := $(BIN)/python -m pytest

.PHONY: setup test test-fast run clean-results

setup:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch and torchvision are pinned (2.14.1 / 0.29.1); the lock pins everything else as tested.
	$(BIN)/pip install -q -r requirements.txt -c requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	bash tools/install-system-packages.sh
	@echo "nasflow is set up: run 'source $(VENV)/bin/activate'"

# Everything CI runs: all tests but the GPU-only ones (they skip themselves without a GPU anyway).
# pytest's exit status 5 (no test collected, e.g. an empty -k selection) is reported, not failed.
test:
	@$(PYTEST) -m "not gpu" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# The quick inner loop: no training, no pipeline runs.
test-fast:
	@$(PYTEST) -m "not slow and not gpu" -x -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

run:
	$(BIN)/snakemake --cores all results/table1.csv
