"""Claim 4 at matched parameter displacement: how far each optimizer moved the weights, beside the trait carried.

The claim-4 rule matched the optimizers on training loss (lowest KD loss over the last 10 steps). The other
fair matching is by how far the weights moved. For every student pair (owl, dog) of the claim-4 sweep and of
stage 2 (`per_seed.csv` of each report), from the model store:

    d_owl = ||theta_owl - theta_base||_2, d_dog likewise    (all unique parameters, tied ones once)
    d_pair = ||theta_owl - theta_dog||_2
    transfer per nat of displacement = interaction / mean(d_owl, d_dog)

`interp.mech.model_diff.weight_diff_table` computes the per-tensor norms. Writes, beside the report:

    displacement.csv          one row per student pair: arm, optimizer, lr, seed, stage, both aliases,
                              d_owl, d_dog, rel_owl, rel_dog (d / ||theta_base||), d_pair, interaction
    displacement_summary.csv  per (stage, arm): seeds, mean d, mean interaction, interaction / d with a t CI
                              over seeds (stage 2 only; one seed in the sweep)

    python experiments/steering/displacement.py [reports/steering/claim4]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from interp.mech.model_diff import weight_diff_table
from interp.models.loaded import LoadedModel
from interp.models.loading import load_model


def total_norm(a: LoadedModel, b: LoadedModel) -> tuple[float, float]:
    """(||theta_a - theta_b||_2, ||theta_b||_2) over all unique parameters."""
    t = weight_diff_table(a, b)
    return float(np.sqrt((t.diff_norm ** 2).sum())), float(np.sqrt((t.base_norm ** 2).sum()))


def pairs(root: Path) -> pd.DataFrame:
    """The student pairs of stage 2 and of the sweep, with each arm's optimizer and learning rate."""
    rates = pd.read_csv(root / "sweep" / "learning_rates.csv")[["arm", "optimizer", "lr"]]
    frames = []
    for stage, folder in (("sweep", root / "sweep"), ("stage 2", root)):
        p = pd.read_csv(folder / "per_seed.csv")[["arm", "seed", "owl_student", "dog_student", "unbiased_student",
                                                   "interaction"]]
        frames.append(p.assign(stage=stage))
    out = pd.concat(frames, ignore_index=True).merge(rates, on="arm", how="left", validate="many_to_one")
    if out.optimizer.isna().any():
        raise SystemExit(f"arms without a learning rate in sweep/learning_rates.csv: "
                         f"{sorted(out.arm[out.optimizer.isna()].unique())}")
    return out


def measure(table: pd.DataFrame) -> pd.DataFrame:
    """The norms of every pair (module docstring); the base is each pair's unbiased student (the untrained base)."""
    bases = table.unbiased_student.unique()
    if len(bases) != 1:
        raise SystemExit(f"pairs with different bases: {list(bases)}")
    base = load_model(str(bases[0]))
    cache: dict[tuple[str, str], tuple[float, float, float, float]] = {}  # a pair in both stages is measured once
    rows = []
    for r in table.itertuples(index=False):
        if (r.owl_student, r.dog_student) not in cache:
            owl, dog = load_model(r.owl_student), load_model(r.dog_student)
            (d_owl, n0), (d_dog, _) = total_norm(owl, base), total_norm(dog, base)
            cache[(r.owl_student, r.dog_student)] = (d_owl, d_dog, n0, total_norm(owl, dog)[0])
        d_owl, d_dog, n0, d_pair = cache[(r.owl_student, r.dog_student)]
        rows.append({**r._asdict(), "d_owl": d_owl, "d_dog": d_dog, "rel_owl": d_owl / n0,
                     "rel_dog": d_dog / n0, "d_pair": d_pair})
        print(f"{r.stage:8s} {r.arm:24s} seed {r.seed}: d_owl {d_owl:.3f} d_dog {d_dog:.3f} d_pair {d_pair:.3f} "
              f"interaction {r.interaction:+.3f}", flush=True)
    return pd.DataFrame(rows)


def summarize(raw: pd.DataFrame) -> pd.DataFrame:
    raw = raw.assign(d_mean=(raw.d_owl + raw.d_dog) / 2)
    raw = raw.assign(per_d=raw.interaction / raw.d_mean)
    out = []
    for (stage, arm), g in raw.groupby(["stage", "arm"], sort=True):
        n = len(g)
        m, s = float(g.per_d.mean()), float(g.per_d.std(ddof=1)) if n > 1 else float("nan")
        half = float(stats.t.ppf(0.975, n - 1) * s / np.sqrt(n)) if n > 1 else float("nan")
        out.append({"stage": stage, "arm": arm, "optimizer": g.optimizer.iloc[0], "lr": g.lr.iloc[0], "n_seeds": n,
                    "d_mean": float(g.d_mean.mean()), "d_pair": float(g.d_pair.mean()),
                    "interaction": float(g.interaction.mean()), "per_d": m, "per_d_lo": m - half, "per_d_hi": m + half})
    return pd.DataFrame(out)


def main(root: Path) -> None:
    raw = measure(pairs(root))
    raw.to_csv(root / "displacement.csv", index=False, float_format="%.6g")
    summary = summarize(raw)
    summary.to_csv(root / "displacement_summary.csv", index=False, float_format="%.5g")
    print(summary.to_string(index=False))
    sweep = summary[summary.stage == "sweep"]
    rho = stats.spearmanr(sweep.d_mean, sweep.interaction)
    print(f"sweep, {len(sweep)} arms: Spearman(displacement, interaction) {rho.statistic:+.3f} (p {rho.pvalue:.3g})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/steering/claim4"))
