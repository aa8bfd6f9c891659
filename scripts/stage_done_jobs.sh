#!/usr/bin/env bash
# Stage (git add) what a committed study folder's done jobs made, and nothing of a job not done:
# plan.json, and for every jobs/<key>/manifest.json its out/ folder, manifest, logs/<key>.log and
# benchmarks/<key>.tsv, and the runners' logs (logs/runner-*.log: what each session ran). Lock files, a
# killed job's staging folder and manifests moved aside (manifest.gone-*) stay out (.gitignore). A session that ran a slice of a study (`interp study run --only`) then commits:
#   bash scripts/stage_done_jobs.sh study-folders/organism-qwen2.5-coder-0.5b && git commit -m "..."
set -euo pipefail
F=${1:?usage: stage_done_jobs.sh STUDY_FOLDER}
[ -f "$F/plan.json" ] || { echo "error: $F/plan.json not found: not a study folder" >&2; exit 2; }
git add "$F/plan.json"
n=0
for m in "$F"/jobs/*/manifest.json; do
  [ -e "$m" ] || continue
  d=$(dirname "$m"); key=$(basename "$d")
  git add "$m" "$d/out"
  for f in "$F/logs/$key.log" "$F/benchmarks/$key.tsv"; do [ -f "$f" ] && git add "$f"; done
  n=$((n + 1))
done
for f in "$F"/logs/runner-*.log; do [ -f "$f" ] && git add "$f"; done
echo "staged $n done jobs of $F"
