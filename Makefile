# Two entry points for a fresh machine; each bootstraps .venv on first use.
#   make demo   - runs `framekd demo` on generated graphs (no data files)
#   make test   - runs ruff and the test suite
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin

.PHONY: demo test lint venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch first; pip then keeps it for the `torch>=2.4` requirement.
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: venv
	$(BIN)/framekd demo

lint: venv
	$(BIN)/ruff check src tests benchmarks

# One intra-op thread: the tests use small graphs, and torch's OpenMP pool slows down
# by orders of magnitude when the cores are shared with other work.
test: venv lint
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest
