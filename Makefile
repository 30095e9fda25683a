# Two commands from a clean clone: `make demo` (the main job on real photos, embedded Milvus Lite)
# and `make test` (the test suite). Both create .venv and install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[demo,test,bulk]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/imgsearch demo

test: $(VENV)/.test-installed
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build *.egg-info
