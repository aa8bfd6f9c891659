#!/usr/bin/env bash
# Write constraints.txt from a virtual environment that passed the tests (default: .venv-latest,
# made by `make test-latest`): every installed distribution at its exact version, except interp
# itself and torch with its CUDA companions (setup keeps an existing torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv-latest/bin/python}"
TORCH="$("$PY" -c 'import torch; print(torch.__version__)')"
{
  echo "# Exact versions CI tested (CPython $("$PY" -c 'import platform; print(platform.python_version())'), Linux), used by scripts/setup.sh as pip constraints (-c)."
  echo "# torch is not pinned here: setup keeps an existing torch (e.g. a CUDA build) and otherwise installs"
  echo "# torch==2.13.0 (tested: $TORCH). Refresh: make test-latest, then make lock (writes this file from"
  echo "# .venv-latest), then make test."
  "$PY" -m pip freeze --exclude-editable --disable-pip-version-check \
    | grep -v -i -E '^(torch|triton|nvidia-[a-z0-9-]*|interp)(==| @)' | grep -v '^-e '
} > constraints.txt
echo "wrote constraints.txt ($(grep -c '==' constraints.txt) pins) from $PY"
