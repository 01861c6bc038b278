# Everything a fresh machine needs: `make run` (the local stack) and `make test`.
PYTHON ?= python3
VENV := .venv
CHROMA_VENV := .venv-chroma
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data

.PHONY: install run demo test test-unit test-integration test-e2e test-slow lint bench lock clean

install: $(VENV)/.installed $(CHROMA_VENV)/.installed

# The lock pins torch 2.13.0+cpu: pip takes the local CPU wheel, never GBs of CUDA.
$(VENV)/.installed: requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The Chroma server gets its own environment: chromadb next to chromadb-client breaks the client.
$(CHROMA_VENV)/.installed: emulators/requirements-chroma.txt
	$(PYTHON) -m venv $(CHROMA_VENV)
	$(CHROMA_VENV)/bin/pip install --quiet --disable-pip-version-check -r emulators/requirements-chroma.txt
	touch $@

run: install
	$(BIN)/python -m emulators.stack $(ARGS)

# Against a running stack (`make run` in another terminal).
demo: $(VENV)/.installed
	$(BIN)/python -m emulators.demo $(ARGS)

test: install
	$(BIN)/python -m ruff check functions tests emulators
	$(BIN)/python -m pytest $(ARGS)

test-unit: install
	$(BIN)/python -m pytest -m unit $(ARGS)

test-integration: install
	$(BIN)/python -m pytest -m integration $(ARGS)

test-e2e: install
	$(BIN)/python -m pytest -m e2e $(ARGS)

# Load and faults through the whole local stack (several minutes; not part of `make test`).
test-slow: install
	$(BIN)/python -m pytest tests/load --slow -s $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/python -m ruff check functions tests emulators
	terraform fmt -check -recursive infra

bench: install
	$(BIN)/python tests/benchmarks/pipeline.py $(ARGS)

# Regenerate the locks after changing a pin in pyproject.toml.
lock:
	$(BIN)/pip install --quiet pip-tools==7.6.2
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url -o requirements.txt pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --extra test --no-emit-find-links --no-emit-index-url -o requirements-dev.txt pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url -o emulators/requirements-chroma.txt emulators/requirements-chroma.in

clean:
	rm -rf $(VENV) $(CHROMA_VENV) .stack .pytest_cache
