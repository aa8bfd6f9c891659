"""The crossover in SHD's space, per training seed, from `shd_signal.py`'s table.

For the owl and dog students of one recipe (student base, method, beta, training examples; teachers' base and
method) and seed, with L(T -> S) the mean over
batches of the SHD term from the teacher of trait T to student S:

    X = [L(dog -> owl student) - L(owl -> owl student)] + [L(owl -> dog student) - L(dog -> dog student)]

X > 0 when each student fits its own teacher's maps better than the other teacher's. Per recipe: the mean over
seeds with its t-interval, seed-level p and MDE (`evals.stats.seed_summary`).

    python experiments/families/shd_crossover.py reports/families/shd_signal*.csv --out reports/families/shd_crossover.csv

(several tables of `shd_signal.py` runs are read as one).

Writes one row per recipe and seed (x, and the four L terms) and one summary row per recipe (seed = "all").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from interp.evals.stats import seed_summary

# a recipe: the student's make-up and the teachers' kind (an owl prompt teacher is not averaged with a LoRA one)
RECIPE = ["student_base", "student_method", "student_beta", "student_n_train", "teacher_base", "teacher_method"]
TRAITS = ("owl", "dog")


def crossover_per_seed(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (recipe, seed) with both students measured against both teachers: the four L terms and x."""
    rows = table.dropna(subset=["teacher_trait", "student_trait", "student_seed"])
    rows = rows[rows.teacher_trait.isin(TRAITS) & rows.student_trait.isin(TRAITS)]
    means = rows.groupby(RECIPE + ["student_seed", "teacher_trait", "student_trait"], dropna=False).shd.mean()
    wide = means.unstack(["teacher_trait", "student_trait"])
    needed = [(t, s) for t in TRAITS for s in TRAITS]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(needed)).dropna()
    out = pd.DataFrame({f"L_{t}_to_{s}_student": wide[(t, s)] for t, s in needed})
    out["x"] = (wide[("dog", "owl")] - wide[("owl", "owl")]) + (wide[("owl", "dog")] - wide[("dog", "dog")])
    out = out.reset_index()
    out["student_seed"] = out.student_seed.astype(int)  # float in the CSV (other rows have none)
    return out


def summarise(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: seed_summary of x over seeds (n_seeds, mean, sd, lo, hi, p, mde_80)."""
    out = []
    for key, group in per_seed.groupby(RECIPE, dropna=False):
        out.append({**dict(zip(RECIPE, key)), "student_seed": "all", **seed_summary(group.x.to_numpy())})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tables", type=Path, nargs="+", help="shd_signal.py's CSVs")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    per_seed = crossover_per_seed(pd.concat([pd.read_csv(t) for t in a.tables], ignore_index=True))
    if per_seed.empty:
        raise SystemExit(f"{[str(t) for t in a.tables]}: no recipe has owl and dog students measured against both "
                         f"teachers")
    summary = summarise(per_seed)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([per_seed, summary], ignore_index=True).to_csv(a.out, index=False, float_format="%.6g")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.5f}"))


if __name__ == "__main__":
    main()
