"""Is the trait a steering vector? (issue 36; Blank et al. 2026). Claim 1 on any base model from a spec:
the teacher's trait system prompt is well approximated by one steering vector.

Crossover pair (A, B) = `recipe.pair` (owl, dog). For each trait T of the pair:

    vector-T   interp steer-vector --a BASE --trait T --prompts `prompts` --n `n_prompts` --positions last:
               v_T[l] = mean resid_post[l] with the T system prompt - without (the reference's v_teacher)
    random-T   random directions with |v_T[l]|'s norm per layer (`SteeringVector.random_like`, seed s)
    sweep-T    base unsteered, base with the T prompt, and base steered at each layer of `layers` by
               alpha v_T (each of `alphas`) and by each random vector: log P(A), log P(B) per question
    collect    per_question.csv (model, trait, condition, vector, layer, alpha, seed, question, logp_owl,
               logp_other: log P(A), log P(B), whatever T is)
    report     claim1.csv, claim1.png, tables.md

Statistic, per (T, layer, alpha, vector), with m_T(q) = log P(T | q) - log P(other | q):

    recovered = mean_q [m_T(steered) - m_T(base)] / mean_q [m_T(prompted) - m_T(base)]

with a paired bootstrap 95% CI over questions (`ratio_of_means_ci`). 1 = the vector moves the margin as
far as the prompt does; the random vector of the same norm is the control.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from interp.studies.graph import Graph
from interp.studies.spec import Strict, Study

ROLES = ("base",)
STEP = "interp.studies.kinds.steering:"


class Recipe(Strict):
    pair: tuple[str, str] = ("owl", "dog")
    prompts: str = "numbers"  # what the vectors are extracted on: numbers | questions
    n_prompts: int = Field(256, ge=1)
    layers: list[int] | None = None  # default: every layer
    alphas: list[float] = [1.0, 4.0]
    random_seeds: list[int] = [0]
    seed: int = Field(0, ge=0)


# ---- steps -------------------------------------------------------------------------------------------


def random_vector(out: Path, params: dict[str, Any], vector: str) -> None:
    from interp.interventions.steering import SteeringVector

    SteeringVector.load(vector).random_like(params["seed"]).save(out / "vector.pt")


def sweep(out: Path, params: dict[str, Any], vector: str, **randoms: str) -> None:
    """per_question.csv of one trait: base, prompted, and steered (layer x alpha x vector) rows."""
    from interp.evals.animal import animal_logprobs, load_questions
    from interp.interventions.steering import Steering, SteeringVector
    from interp.models import load_model
    from interp.training.teacher import trait_system_prompt

    lm = load_model(params["model"], device=params["device"], dtype=params["dtype"])
    qs, pair, trait = load_questions(), params["pair"], params["trait"]
    vectors = [("v_teacher", SteeringVector.load(vector), -1)]
    vectors += [("random", SteeringVector.load(Path(p) / "vector.pt"), int(k.split("_s")[-1])) for k, p in randoms.items()]
    layers = params["layers"] if params["layers"] is not None else list(range(lm.spec.n_layers))
    rows: list[pd.DataFrame] = []

    def score(condition: str, vector_kind: str, layer: int, alpha: float, seed: int, system: str | None = None) -> None:
        lp = animal_logprobs(lm, qs, pair, system)
        rows.append(pd.DataFrame({"model": params["model"], "trait": trait, "condition": condition, "vector": vector_kind,
                                  "layer": layer, "alpha": alpha, "seed": seed, "question": range(len(qs)),
                                  "logp_owl": lp[:, 0], "logp_other": lp[:, 1]}))

    score("base", "", -1, 0.0, -1)
    score("prompted", "", -1, 0.0, -1, trait_system_prompt(trait))
    for layer in layers:
        for alpha in params["alphas"]:
            for kind, vec, seed in vectors:
                with Steering(lm, vec.at(layer), layer, alpha, "add"):
                    score("steered", kind, layer, alpha, seed)
        print(f"  layer {layer} done", flush=True)
    pd.concat(rows, ignore_index=True).to_csv(out / "per_question.csv", index=False, float_format="%.6f")


def collect(out: Path, params: dict[str, Any], **sweeps: str) -> None:
    parts = [pd.read_csv(Path(sweeps[f"sweep_{t}"]) / "per_question.csv") for t in params["pair"]]
    pd.concat(parts, ignore_index=True).to_csv(out / "per_question.csv", index=False, float_format="%.6f")
    (out / "vectors.json").write_text(json.dumps({t: json.loads((Path(sweeps[f"vector_{t}"]) / "vector.json").read_text())
                                                  for t in params["pair"]}, indent=1) + "\n")


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    """The raw tables (copied) and the report on them."""
    from interp.studies.steps import copy_files

    copy_files(raw, out)
    report(Path(raw), out, Recipe(**params))


# ---- report ------------------------------------------------------------------------------------------


def margins(pq: pd.DataFrame, pair: tuple[str, str]) -> pd.Series:
    """m_T = log P(T) - log P(other) per row (T = the row's trait)."""
    m = pq.logp_owl - pq.logp_other
    return m.where(pq.trait == pair[0], -m)


def claim1(pq: pd.DataFrame, pair: tuple[str, str]) -> pd.DataFrame:
    """recovered per (trait, vector, layer, alpha, seed) with its paired bootstrap CI (module docstring)."""
    from interp.evals.stats import ratio_of_means_ci

    pq = pq.assign(m=margins(pq, pair))
    rows = []
    for trait, g in pq.groupby("trait", sort=False):
        base = g[g.condition == "base"].sort_values("question").m.to_numpy()
        gap = g[g.condition == "prompted"].sort_values("question").m.to_numpy() - base
        for (vec, layer, alpha, seed), s in g[g.condition == "steered"].groupby(["vector", "layer", "alpha", "seed"]):
            d = s.sort_values("question").m.to_numpy() - base
            r = ratio_of_means_ci(d, gap)
            rows.append({"trait": trait, "vector": vec, "layer": layer, "alpha": alpha, "seed": seed,
                         "prompt_shift": float(gap.mean()), "steered_shift": float(d.mean()),
                         "recovered": r.estimate, "recovered_lo": r.lo, "recovered_hi": r.hi})
    return pd.DataFrame(rows)


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """claim1.csv, claim1.png, tables.md from per_question.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp.plots import figure_png
    from interp.report.tables import frame_markdown

    t = claim1(pd.read_csv(raw / "per_question.csv"), recipe.pair)
    t.to_csv(out / "claim1.csv", index=False, float_format="%.5g")
    fig, axes = plt.subplots(1, len(recipe.pair), figsize=(6 * len(recipe.pair), 3.8), squeeze=False)
    for ax, trait in zip(axes[0], recipe.pair):
        for (vec, alpha), g in t[t.trait == trait].groupby(["vector", "alpha"]):
            g = g.groupby("layer", as_index=False)[["recovered", "recovered_lo", "recovered_hi"]].mean()
            ax.plot(g.layer, g.recovered, "o-" if vec == "v_teacher" else "x--", label=f"{vec}, alpha {alpha:g}")
            ax.fill_between(g.layer, g.recovered_lo, g.recovered_hi, alpha=0.15)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(1, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{trait}: steering the base vs its prompt")
        ax.set_xlabel("layer")
        ax.set_ylabel("recovered share of the prompt's margin shift")
        ax.legend(fontsize=7)
    (out / "claim1.png").write_bytes(figure_png(fig))
    best = t[t.vector == "v_teacher"].sort_values("recovered", ascending=False).groupby("trait").head(3)
    (out / "tables.md").write_text("\n".join([
        "# Claim 1: the prompt as a steering vector\n", f"Recipe: {json.dumps(recipe.model_dump(mode='json'))}\n",
        "## Best layers (v_teacher)\n", frame_markdown(best), "## Every layer\n", frame_markdown(t)]))


# ---- the graph ---------------------------------------------------------------------------------------


def build(study: Study, g: Graph) -> str:
    r: Recipe = study.recipe
    base, load = study.model("base"), study.loading()
    inputs: dict[str, Any] = {}
    for trait in r.pair:
        vec = g.command(f"vector-{trait}", ["steer-vector", "--a", base, "--trait", trait, "--prompts", r.prompts,
                                            "--n", str(r.n_prompts), "--positions", "last", "--seed", str(r.seed), *load],
                        **study.resources("steer-vector"))
        rand = {f"random_s{s}": g.out(g.step(f"random-{trait}-s{s}", STEP + "random_vector", {"seed": s},
                                             {"vector": g.out(vec, "vector.pt")})) for s in r.random_seeds}
        sw = g.step(f"sweep-{trait}", STEP + "sweep",
                    {"model": base, "device": study.spec.device, "dtype": study.spec.dtype, "trait": trait,
                     "pair": list(r.pair), "layers": r.layers, "alphas": r.alphas},
                    {"vector": g.out(vec, "vector.pt"), **rand}, **study.resources("sweep"))
        inputs |= {f"sweep_{trait}": g.out(sw), f"vector_{trait}": g.out(vec)}
    col = g.step("collect", STEP + "collect", {"pair": list(r.pair)}, inputs)
    return g.step("report", STEP + "report_step", r.model_dump(mode="json"), {"raw": g.out(col)}).name
