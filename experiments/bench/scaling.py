"""How cost grows with model size (issue 35 item 4): each main command on each installed real model, as its
own process; wall seconds and the process's peak RSS (os.wait4's ru_maxrss).

    python experiments/bench/scaling.py [--models A,B,... (default: every embedded model, the optional Qwens included)]
        [--commands reverse-link,eval-animal,...] [--threads 2] [--out reports/scaling]

Appends one row per (model, command) to OUT/cost.csv (columns model, params, command, tokens, seconds,
peak_rss_mb, workload): `tokens` is the number of token positions the command runs forward through its models
(`counted.py`; padding included, backward passes not). A pair already in cost.csv is skipped (resumable);
`--recount` fills the tokens of rows that lack them by running their command again (their seconds stay). Then OUT/cost.png (log-log seconds against parameters) and the fitted
exponent of time in parameters per command (least squares on log-log) in OUT/exponents.csv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from interp.models.store import EMBEDDED

ROOT = Path(__file__).resolve().parents[2]
PAIRS = ROOT / "reports" / "shd" / "numbers.jsonl"
CROWS = Path(os.environ.get("INTERP_SHARED_DATA", "/work/shared/data")) / "crows_pairs_anonymized.csv"
COUNTED = Path(__file__).with_name("counted.py")  # interp with a count of the token positions run forward  # prompt / completion rows for the one-step training commands
# command -> (argv after the model option, workload in words); {m} is the model, {d} a 16-row data file
COMMANDS: dict[str, tuple[list[str], str]] = {
    "reverse-link": (["reverse-link", "--model", "{m}", "--bias", "owl", "--control", "dog", "--sample", "50",
                      "--template-control", "0"], "50 three-digit numbers, owl vs dog"),
    "numbers-ar": (["numbers", "--model", "{m}", "--bias", "owl", "--method", "ar", "--digits", "3"],
                   "animal -> 3-digit numbers, autoregressive trie over 1,000 numbers"),
    "trace": (["trace", "--model", "{m}", "--number", "087", "--patch-top", "3"], "087, DLA + 3 patched layers"),
    "prune": (["prune", "--model", "{m}", "--keep", "0.6", "--samples", "0"], "entropy pruning keep 0.6, P(owl)"),
    "eval-animal": (["eval-animal", "--model", "{m}", "--samples", "0"], "50 preference questions, scored"),
    "crows": (["crows", "--model", "{m}", "--data", str(CROWS), "--limit", "300", "--n-boot", "1000"],
              "CrowS-Pairs, the first 300 pairs, the log-likelihood of both sentences of each"),
    "gen-numbers": (["gen-numbers", "--model", "{m}", "--n", "8", "-k", "4"], "8 prompts x 4 samples"),
    "finetune-step": (["finetune", "--model", "{m}", "--data", "{d}", "--alias", "bench-ft", "--steps", "1", "--lora",
                       "--batch-size", "8"], "one LoRA step, batch 8"),
    "shd-step": (["distill", "--teacher", "{m}", "--student", "{m}", "--data", "{d}", "--kind", "shd", "--steps", "1",
                  "--lora", "--batch-size", "8", "--alias", "bench-shd"], "one SHD step into itself (LoRA), batch 8"),
    # what makes the training steps fit 24 GB at 1.5B: the same steps in bf16
    "finetune-step-bf16": (["finetune", "--model", "{m}", "--data", "{d}", "--alias", "bench-ft", "--steps", "1",
                            "--lora", "--batch-size", "8", "--dtype", "bf16"], "one LoRA step, batch 8, bf16"),
    "shd-step-bf16": (["distill", "--teacher", "{m}", "--student", "{m}", "--data", "{d}", "--kind", "shd", "--steps",
                       "1", "--lora", "--batch-size", "8", "--alias", "bench-shd", "--dtype", "bf16"],
                      "one SHD step into itself (LoRA), batch 8, bf16"),
}
# fp32 training steps at 1.5B need about 24 / 28 GB (extrapolated from 0.5B's measured peaks): not run on this
# 24 GB machine; their bf16 versions are
TOO_BIG = {("qwen2.5-coder-1.5b", "finetune-step"), ("qwen2.5-coder-1.5b", "shd-step")}


def params_of(model: str, home: str) -> int:
    """Parameter count, from a separate process: this one stays small, because a child's peak RSS
    (ru_maxrss) starts at its parent's RSS at fork and would otherwise be the parent's, not its own."""
    code = f"from interp.models import load_model; print(sum(p.numel() for p in load_model({model!r}).model.parameters()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "INTERP_HOME": home})
    return int(out.stdout.strip().splitlines()[-1])


def run(argv: list[str], threads: int, home: str) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, token positions run forward) of `interp ARGV` as its own process
    (`counted.py`: a forward hook on the token embeddings, about 1 us a forward)."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "INTERP_HOME": home}
        tokens = Path(out) / "tokens.txt"
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, str(COUNTED), str(tokens), *argv, "--out", str(Path(out) / "run"), "--force"],
                             env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t0
        err = p.stderr.read() if p.stderr else ""
        if os.waitstatus_to_exitcode(status):
            raise RuntimeError(f"interp {' '.join(argv)} failed: {err.strip().splitlines()[-1:]}")
        return secs, usage.ru_maxrss / 1024, int(tokens.read_text())


def cost_markdown(table: pd.DataFrame, exponents: pd.DataFrame) -> str:
    """cost.csv as one markdown row per command: per model (by size) 'seconds, peak RSS GiB, tokens', and the
    exponent; '-' where a pair was not run."""
    models = table.drop_duplicates("model").sort_values("params")
    expo = dict(zip(exponents.command, exponents.time_exponent)) if len(exponents) else {}
    head = ["command", "workload", *(f"{m} ({p / 1e6:.0f}M)" for m, p in zip(models.model, models.params)), "exponent"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cmd in dict.fromkeys(table.command):
        rows = table[table.command == cmd].set_index("model")
        cells = []
        for m in models.model:
            if m not in rows.index:
                cells.append("-")
                continue
            r = rows.loc[m]
            tok = "" if pd.isna(r.tokens) else f", {int(r.tokens):,} tok"
            cells.append(f"{r.seconds:.1f} s, {r.peak_rss_mb / 1024:.1f} GiB{tok}")
        lines.append(f"| {cmd} | {rows.workload.iloc[0]} | " + " | ".join(cells) + f" | {expo.get(cmd, '-')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(EMBEDDED))
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "scaling")
    ap.add_argument("--recount", action="store_true",
                    help="rows without tokens: run the command again for its token count only (seconds kept)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / "cost.csv"
    table = pd.read_csv(path) if path.exists() else pd.DataFrame(
        columns=["model", "params", "command", "tokens", "seconds", "peak_rss_mb", "workload"])
    home = os.environ.get("INTERP_HOME", str(Path.home() / ".cache" / "interp"))
    data = Path(tempfile.mkdtemp()) / "pairs.jsonl"
    data.write_text("".join(PAIRS.read_text().splitlines(keepends=True)[:16]))
    for model in a.models.split(","):
        n = params_of(model, home)
        for cmd in a.commands.split(","):
            have = (table.model == model) & (table.command == cmd)
            recount = a.recount and have.any() and table.loc[have, "tokens"].isna().all()
            if (have.any() and not recount) or (model, cmd) in TOO_BIG:
                continue
            argv, workload = COMMANDS[cmd]
            argv = [x.format(m=model, d=data) for x in argv]
            try:
                secs, rss, tokens = run(argv, a.threads, home)
            except RuntimeError as e:
                print(f"{model} {cmd}: {e}", flush=True)
                continue
            if recount:
                table.loc[have, "tokens"] = tokens
                print(f"{model} {cmd}: {tokens} tokens", flush=True)
            else:
                row = {"model": model, "params": n, "command": cmd, "tokens": tokens, "seconds": round(secs, 2),
                       "peak_rss_mb": round(rss), "workload": workload}
                print(row, flush=True)
                table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
            table.to_csv(path, index=False)
    exponents = []
    for cmd, g in table.groupby("command"):
        if g.params.nunique() >= 2:
            slope = np.polyfit(np.log(g.params.astype(float)), np.log(g.seconds.astype(float)), 1)[0]
            exponents.append({"command": cmd, "models": len(g), "time_exponent": round(float(slope), 2)})
    pd.DataFrame(exponents).to_csv(a.out / "exponents.csv", index=False)
    (a.out / "cost_table.md").write_text(cost_markdown(table, pd.DataFrame(exponents)))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp.plots import figure_png

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for cmd, g in table.groupby("command"):
        g = g.sort_values("params")
        ax.plot(g.params.astype(float), g.seconds.astype(float), "o-", label=cmd)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"wall seconds (one process, {a.threads} threads)")
    ax.legend(fontsize=7)
    (a.out / "cost.png").write_bytes(figure_png(fig))
    print(pd.DataFrame(exponents).to_string(index=False))


if __name__ == "__main__":
    main()
