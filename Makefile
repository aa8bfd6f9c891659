# The two commands of the README: `make demo` (main job on the embedded model) and `make test`.
PYTHON ?= python3

.PHONY: setup demo test bench

setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

demo: setup
	interp reverse-link --model smollm2 --bias owl --control dog --digits 3 --sample 200 --out runs/demo --force

test: setup
	$(PYTHON) -m pytest -q

bench: setup
	$(PYTHON) experiments/bench/reverse_link.py
