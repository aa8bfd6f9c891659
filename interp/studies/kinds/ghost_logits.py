"""How the ghost-logit effect grows (reports/ghost_logits/README.md): one factor of `grid` at a time
around the base config (`interp.training.ghost_logits.GhostConfig`, the recipe's own keys), aux-only
students (student_aux, cross_aux), `seeds` vectorised copies each. No language model: `models: {}`.

Jobs: one `run` step per distinct configuration (`run_ghost_logits`; `interp ghost-logits` always
distils all four students, which draws other noise and batch orders, so it does not reproduce these
runs), `collect` (sweep_per_seed.csv: one row per (configuration, copy, condition), every config
parameter as a column, `data_seed` = GhostConfig.seed, plus the run's elapsed_s) and `report`:
per configuration (sweep.csv) the mean accuracy over copies of teacher, student_aux and cross_aux
with a 95% t-interval (`interval: t`: mean -/+ t_{0.975, n-1} sd / sqrt(n), what the committed sweep
used; `logit`: `proportion_t_interval`, inside [0, 1]), and the paired difference student_aux -
cross_aux per copy (`paired_test`: bootstrap CI, sign-flip p); sweep.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field, field_validator

from interp.studies.graph import Graph
from interp.studies.spec import Strict, Study

ROLES: tuple[str, ...] = ()
STEP = "interp.studies.kinds.ghost_logits:"
STUDENTS = ("student_aux", "cross_aux")
CONDITIONS = ("teacher", *STUDENTS)
CONFIG = ("ghosts", "noise", "epochs_distill", "seeds", "epochs_teacher", "batch_size", "lr", "hidden",
          "test_fraction", "data_seed")  # the per-seed table's config columns


class Recipe(Strict):
    seeds: int = Field(20, ge=2)  # vectorised copies (the unit of replication)
    ghosts: int = Field(3, ge=1)
    noise: int = Field(10_000, ge=1)
    epochs_teacher: int = Field(20, ge=1)
    epochs_distill: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-4, gt=0)
    hidden: list[int] = [256, 256]
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0  # data split, batch orders, noise; copy c is initialised from seed + 1000 c
    grid: dict[str, list[int]] = {"ghosts": [1, 3, 10], "noise": [1000, 3000, 10000], "epochs_distill": [5, 10, 20]}
    interval: Literal["t", "logit"] = "logit"

    @field_validator("grid")
    @classmethod
    def _factors(cls, grid: dict[str, list[int]]) -> dict[str, list[int]]:
        bad = [k for k in grid if k not in ("ghosts", "noise", "epochs_teacher", "epochs_distill", "batch_size")]
        if bad:
            raise ValueError(f"grid factor {bad[0]!r} is not one of ghosts, noise, epochs_teacher, epochs_distill, batch_size")
        return grid


def base_config(recipe: Recipe) -> dict[str, Any]:
    """The GhostConfig keyword arguments of the recipe's base configuration."""
    return {k: getattr(recipe, k) for k in ("seeds", "ghosts", "noise", "epochs_teacher", "epochs_distill",
                                            "batch_size", "lr", "hidden", "test_fraction", "seed")}


def configs(recipe: Recipe) -> list[tuple[str, dict[str, Any]]]:
    """(factor, config) per distinct configuration, in grid order; a config met twice (the base) keeps
    its first factor."""
    out: list[tuple[str, dict[str, Any]]] = []
    for factor, values in recipe.grid.items():
        for v in values:
            cfg = {**base_config(recipe), factor: v}
            if cfg not in [c for _, c in out]:
                out.append((factor, cfg))
    return out


def columns(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config as the per-seed table's columns (hidden as '256-256', seed as data_seed)."""
    c = {**cfg, "hidden": "-".join(str(h) for h in cfg["hidden"]), "data_seed": cfg["seed"]}
    return {k: c[k] for k in CONFIG}


# ---- steps -------------------------------------------------------------------------------------------


def run(out: Path, params: dict[str, Any]) -> None:
    """One configuration, aux students only: per_seed.csv (seed, init_seed, condition, accuracy, the
    config's columns, elapsed_s)."""
    from interp.training.ghost_logits import GhostConfig, run_ghost_logits

    cfg = GhostConfig(**{**params, "hidden": tuple(params["hidden"])})
    res = run_ghost_logits(cfg, progress=lambda m: print("  " + m, flush=True), students=STUDENTS)
    res.per_seed.assign(**columns(params), elapsed_s=res.summary["elapsed_s"]).to_csv(out / "per_seed.csv", index=False)


def collect(out: Path, params: dict[str, Any], **runs: str) -> None:
    """sweep_per_seed.csv: every run's per_seed.csv, in the order of params['order']."""
    parts = [pd.read_csv(Path(runs[name]) / "per_seed.csv") for name in params["order"]]
    pd.concat(parts, ignore_index=True).to_csv(out / "sweep_per_seed.csv", index=False)


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    report(Path(raw), out, Recipe(**params))


# ---- report ------------------------------------------------------------------------------------------


def interval(values: Any, kind: str) -> tuple[float, float, float]:
    """(mean, lo, hi) of per-copy accuracies: a t-interval (`seed_summary`), on the logit scale if `kind` is logit."""
    from interp.evals.stats import seed_summary

    s = seed_summary(values, proportion=kind == "logit")
    return s["mean"], s["lo"], s["hi"]


def summary_row(factor: str, cfg: dict[str, Any], per: pd.DataFrame, kind: str) -> dict[str, Any]:
    """One line of sweep.csv from the per-seed rows of one configuration."""
    from interp.evals.stats import paired_test

    acc = {c: per[per.condition == c].sort_values("seed").accuracy.to_numpy() for c in CONDITIONS}
    row = {"factor": factor, "ghosts": cfg["ghosts"], "noise": cfg["noise"], "epochs_distill": cfg["epochs_distill"],
           "seeds": cfg["seeds"], "elapsed_s": per.elapsed_s.iloc[0]}
    for c in CONDITIONS:
        row.update(zip((f"{c}_mean", f"{c}_lo", f"{c}_hi"), interval(acc[c], kind)))
    d = paired_test(acc["student_aux"], acc["cross_aux"])
    return row | {"diff_mean": d.mean_diff.estimate, "diff_lo": d.mean_diff.lo, "diff_hi": d.mean_diff.hi,
                  "diff_p": d.p_value}


def of_config(per_seed: pd.DataFrame, cfg: dict[str, Any]) -> pd.DataFrame:
    """The per-seed rows of one configuration (matched on every config column)."""
    mask = pd.Series(True, index=per_seed.index)
    for k, v in columns(cfg).items():
        mask &= per_seed[k].astype(str) == str(v) if k == "hidden" else per_seed[k] == v
    return per_seed[mask]


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """sweep.csv (one row per configuration, in grid order) and sweep.png from sweep_per_seed.csv."""
    per_seed = pd.read_csv(raw / "sweep_per_seed.csv")
    rows = []
    for factor, cfg in configs(recipe):
        per = of_config(per_seed, cfg)
        if len(per) == 0:
            raise ValueError(f"{raw / 'sweep_per_seed.csv'} has no rows of the configuration {columns(cfg)}")
        rows.append(summary_row(factor, cfg, per, recipe.interval))
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "sweep.csv", index=False)
    (out / "sweep.png").write_bytes(sweep_png(df, recipe))


def sweep_png(df: pd.DataFrame, recipe: Recipe) -> bytes:
    """One panel per grid factor (the others at the base): student_aux and cross_aux, mean and CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp.plots import figure_png

    base = base_config(recipe)
    fig, axes = plt.subplots(1, len(recipe.grid), figsize=(11, 3.4), dpi=100, sharey=True, squeeze=False)
    for ax, factor in zip(axes[0], recipe.grid):
        others = {k: base[k] for k in recipe.grid if k != factor}
        sub = df[(df[list(others)] == pd.Series(others)).all(axis=1)].sort_values(factor)
        for c, color in (("student_aux", "C4"), ("cross_aux", "C0")):
            ax.errorbar(sub[factor], sub[f"{c}_mean"], yerr=[sub[f"{c}_mean"] - sub[f"{c}_lo"],
                        sub[f"{c}_hi"] - sub[f"{c}_mean"]], marker="o", capsize=3, color=color, label=c)
        ax.axhline(0.1, ls="--", c="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(factor)
        ax.set_title(", ".join(f"{k}={v}" for k, v in others.items()), fontsize=8)
    axes[0][0].set_ylabel("test accuracy (95% CI over seeds)")
    axes[0][0].legend(fontsize=8)
    return figure_png(fig)


# ---- the graph ---------------------------------------------------------------------------------------


def job_name(factor: str, cfg: dict[str, Any]) -> str:
    return f"run-{factor}={cfg[factor]}"


def build(study: Study, g: Graph) -> str:
    r = study.recipe
    runs = [g.step(job_name(f, cfg), STEP + "run", cfg, **study.resources("run")) for f, cfg in configs(r)]
    col = g.step("collect", STEP + "collect", {"order": [j.name for j in runs]}, {j.name: g.out(j) for j in runs})
    return g.step("report", STEP + "report_step", r.model_dump(mode="json"), {"raw": g.out(col)}).name
