#!/usr/bin/env bash
# The prepared accelerator check (issue 35 item 6), for a GPU machine with no network: random-weight models of
# the seeds' real configs (Llama-3.2-1B, GPT-2-medium, Gemma-2B, Mistral-7B), then trace, prune, a LoRA
# finetune step, an SHD step and a QLoRA step in bf16 on cuda, printing time and peak GPU memory of each.
# Under 8 minutes on one H100 is the budget; its output goes to ${OUT:-runs/gpu_check}/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_check}"
export INTERP_HOME="${INTERP_HOME:-$OUT/home}" HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
timeout 480 python3 scripts/gpu_check.py --device cuda --dtype bf16 --out "$OUT"
