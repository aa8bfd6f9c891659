#!/usr/bin/env bash
# Run each bad-input / fault case of docs/commands/errors.md on the tiny models and print, per case,
# the command, its stderr, its exit code and what --out holds afterwards (markdown on stdout).
# Uses a scratch INTERP_HOME and folder; nothing outside them is touched.
set -uo pipefail
W="$(mktemp -d)"
export INTERP_HOME="$W/home" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd "$W"
python - 2>/dev/null <<'PY'
from interp.models import store
from interp.models.tiny import tiny_model
for alias in ("tiny-made", "tiny-truncated", "tiny-noconfig"):
    m, t = tiny_model("llama", seed=2)
    store.save_model(alias, m, t, {"kind": "made", "source": "fault demo"})
d = store.entry_dir("tiny-made") / "model.safetensors"
b = bytearray(d.read_bytes()); b[len(b) // 2] ^= 0xFF; d.write_bytes(bytes(b))        # flipped byte, same size
d = store.entry_dir("tiny-truncated") / "model.safetensors"; d.write_bytes(d.read_bytes()[:1000])
(store.entry_dir("tiny-noconfig") / "config.json").unlink()
PY
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(128, 256)) * 4)' > binary.bin  # not UTF-8, no NUL
printf '{"prompt": "p", "completion": "1"}\n' > data.jsonl
case_() {
  local title="$1"; shift
  rm -rf out
  echo "#### $title"; echo; echo '```'; echo "\$ interp $(printf '%q ' "$@")--out out"
  interp "$@" --out out 2>err.txt >/dev/null; local code=$?
  cat err.txt; echo "exit code $code; --out afterwards: $( [ -e out ] && ls -A out | tr '\n' ' ' || echo 'absent' )"
  echo '```'; echo
}
case_ "An alias that shadows a built-in model" teach --base tiny-llama --method prompt --alias tiny-llama
case_ "An empty alias" teach --base tiny-llama --method prompt --alias ""
case_ "Flipped bytes in stored weights" reverse-link --model tiny-made --numbers 087
case_ "A truncated safetensors file" reverse-link --model tiny-truncated --numbers 087
case_ "A store entry without config.json" reverse-link --model tiny-noconfig --numbers 087
case_ "A binary file as --data" finetune --model tiny-llama --alias s1 --steps 1 --data binary.bin
case_ "A binary file as --templates" gen-numbers --model tiny-llama --n 2 --templates binary.bin
case_ "A binary file as --questions" eval-animal --model tiny-llama --questions binary.bin
case_ "A binary file as StereoSet data" stereoset --model tiny-llama --data binary.bin
case_ "A negative learning rate" finetune --model tiny-llama --alias s1 --steps 1 --data data.jsonl --lr -1
case_ "An empty --numbers" reverse-link --model tiny-llama --numbers ""
case_ "--digits 0" reverse-link --model tiny-llama --digits 0
mkdir -p rep && cp binary.bin rep/summary.json
echo "#### A binary summary.json given to report"; echo; echo '```'; echo '$ interp report rep'
interp report rep 2>err.txt >/dev/null; code=$?; cat err.txt; echo "exit code $code; rep afterwards: $(ls -A rep | tr '\n' ' ')"; echo '```'
echo; echo "#### A damaged latest checkpoint with --resume"; echo; echo '```'
for i in $(seq 0 15); do printf '{"prompt": "Count %d:", "completion": " %d, %d"}\n' $i $i $((i+1)); done > count.jsonl
rm -rf ck
interp finetune --model tiny-llama --data count.jsonl --steps 6 --batch-size 2 --checkpoint-every 2 --alias ck-run --out ck >/dev/null 2>&1
echo "\$ ls ck/checkpoints"; ls ck/checkpoints
echo "\$ truncate -s 64 ck/checkpoints/step-000006/trainable.safetensors"; truncate -s 64 ck/checkpoints/step-000006/trainable.safetensors
echo "\$ interp finetune --model tiny-llama --data count.jsonl --steps 6 --batch-size 2 --checkpoint-every 2 --alias ck-run --out ck --resume"
interp finetune --model tiny-llama --data count.jsonl --steps 6 --batch-size 2 --checkpoint-every 2 --alias ck-run --out ck --resume 2>err.txt >out.txt; code=$?
grep -E "^(warning|error):" err.txt; grep "resumed from" out.txt; echo "exit code $code"
echo '```'
rm -rf "$W"
