"""How the ghost-logit effect grows: ghost count, noise set size, distillation epochs (one at a time
around the base config of `interp ghost-logits`), aux-only students, 20 seeds each.

    python experiments/ghost_logits_sweep.py [--seeds 20] [--out reports/ghost_logits]

Resumable: each finished configuration appends its rows to OUT/sweep_per_seed.csv (seed-level
accuracies) and OUT/sweep.csv (means, t-intervals, the paired student_aux - cross_aux difference);
a configuration already in sweep.csv is skipped. Then OUT/sweep.png.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pandas as pd

from interp.plots import figure_png
from interp.training.ghost_logits import GhostConfig, run_ghost_logits

BASE = GhostConfig()
GRID = {"ghosts": [1, 3, 10], "noise": [1000, 3000, 10000], "epochs_distill": [5, 10, 20]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--out", default="reports/ghost_logits")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    summary_csv, seeds_csv = out / "sweep.csv", out / "sweep_per_seed.csv"
    done = pd.read_csv(summary_csv) if summary_csv.exists() else pd.DataFrame()
    configs = []
    for factor, values in GRID.items():
        for v in values:
            cfg = replace(BASE, seeds=a.seeds, **{factor: v})
            if cfg not in [c for _, c in configs]:
                configs.append((factor, cfg))
    for factor, cfg in configs:
        key = (cfg.ghosts, cfg.noise, cfg.epochs_distill, cfg.seeds)
        if len(done) and ((done.ghosts == key[0]) & (done.noise == key[1]) & (done.epochs_distill == key[2])
                          & (done.seeds == key[3])).any():
            print(f"skip {key} (done)", flush=True)
            continue
        res = run_ghost_logits(cfg, progress=lambda m: print("  " + m, flush=True), students=("student_aux", "cross_aux"))
        f, d = res.summary["figures"], res.summary["student_aux_minus_cross_aux"]
        row = {"factor": factor, "ghosts": cfg.ghosts, "noise": cfg.noise, "epochs_distill": cfg.epochs_distill,
               "seeds": cfg.seeds, "elapsed_s": res.summary["elapsed_s"]}
        for c in ("teacher", "student_aux", "cross_aux"):
            row.update({f"{c}_mean": f[c]["mean"], f"{c}_lo": f[c]["lo"], f"{c}_hi": f[c]["hi"]})
        row.update({"diff_mean": d["mean_diff"]["estimate"], "diff_lo": d["mean_diff"]["lo"],
                    "diff_hi": d["mean_diff"]["hi"], "diff_p": d["p_value"]})
        print(f"{key}: student_aux {row['student_aux_mean']:.3f}, cross_aux {row['cross_aux_mean']:.3f}, "
              f"{row['elapsed_s']:.0f} s", flush=True)
        per = res.per_seed.assign(ghosts=cfg.ghosts, noise=cfg.noise, epochs_distill=cfg.epochs_distill)
        per.to_csv(seeds_csv, mode="a", header=not seeds_csv.exists(), index=False)
        pd.DataFrame([row]).to_csv(summary_csv, mode="a", header=not summary_csv.exists(), index=False)
        done = pd.read_csv(summary_csv)
    plot(done, out / "sweep.png")


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), dpi=100, sharey=True)
    for ax, (factor, values) in zip(axes, GRID.items()):
        others = {k: getattr(BASE, k) for k in GRID if k != factor}
        sub = df[(df[list(others)] == pd.Series(others)).all(axis=1)].sort_values(factor)
        for c, color in (("student_aux", "C4"), ("cross_aux", "C0")):
            ax.errorbar(sub[factor], sub[f"{c}_mean"], yerr=[sub[f"{c}_mean"] - sub[f"{c}_lo"],
                        sub[f"{c}_hi"] - sub[f"{c}_mean"]], marker="o", capsize=3, color=color, label=c)
        ax.axhline(0.1, ls="--", c="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(factor)
        ax.set_title(", ".join(f"{k}={v}" for k, v in others.items()), fontsize=8)
    axes[0].set_ylabel("test accuracy (95% CI over seeds)")
    axes[0].legend(fontsize=8)
    path.write_bytes(figure_png(fig))


if __name__ == "__main__":
    main()
