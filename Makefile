# Two entry points for a fresh clone: `make demo` and `make test`. Both bootstrap .venv.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= 2
DEMO_TARGETS := results/ml100k_sasrec_base_metrics.json results/ml100k_sasrec_metrics.json

.PHONY: demo test test-fast lint format venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test,slurm,onnx]'
	# The embedded ml100k dataset ships inside recbole's wheel; none of recbole's own
	# dependencies are needed to read two text files from it.
	$(PYTHON) -m pip install --quiet --no-deps recbole==1.2.1
	touch $(STAMP)

# The demo builds the default targets (config.yaml: ml100k, SASRec plain and LLM-ESR, with
# their tables and plots) on one seed, the paper's first, with a budget of DEMO_EPOCHS epochs
# so that it ends in minutes. The paper's protocol (up to 200 epochs, early stopping with
# patience 20, seeds 42/43/44) is `snakemake --cores N`, or `make demo DEMO_EPOCHS=200`.
DEMO_EPOCHS ?= 10
DEMO_CONFIG := --config train='{seed: 42, max_epochs: $(DEMO_EPOCHS)}'
demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --cores $(CORES) $(DEMO_CONFIG)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --report results/report.html $(DEMO_CONFIG)
	$(PYTHON) -m pipeline compare $(DEMO_TARGETS)
	@echo "Demo budget: at most $(DEMO_EPOCHS) epochs per model. The paper's protocol (up to 200 epochs, early"
	@echo "stopping with patience 20, seeds 42, 43, 44): .venv/bin/snakemake --cores $(CORES)"

# The linters first (ruff: lint and format; snakefmt: Snakefile and rules), then the suite. In CI
# (CI=true) the workflow also runs through a real single-node Slurm (needs root and Debian's
# package mirror; tests/slurm/run.sh installs slurm-wlm and munge when missing).
test: lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PYTHON) -m pytest
	if [ "$$CI" = "true" ]; then PYTHON="$(CURDIR)/$(PYTHON)" bash tests/slurm/run.sh; fi

# The suite without the end-to-end runs (tests marked slow): a few minutes.
test-fast: lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PYTHON) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(PYTHON) -m pipeline docs --check

# Rewrites the code in the linters' style.
format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/snakefmt Snakefile rules

clean:
	rm -rf results .snakemake
