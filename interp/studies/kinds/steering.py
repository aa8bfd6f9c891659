"""Is the trait a steering vector? (issue 36; Blank et al. 2026). Claim 1 on any base model from a spec:
the teacher's trait system prompt is well approximated by one steering vector.

Crossover pair (A, B) = `recipe.pair` (owl, dog). For each trait T of the pair:

    vector-T        interp steer-vector --a BASE --trait T --prompts `prompts` --n `n_prompts` --positions last:
                    v_T[l] = mean resid_post[l] with the T system prompt - without (the reference's v_teacher)
    random-T-s      random directions with |v_T[l]|'s norm per layer (`SteeringVector.random_like`, seed s; the
                    A and B vectors of one seed drawn independently)
    anchor-T        base unsteered and base with the T prompt: log P(A), log P(B) per question
    sweep-T-V       base steered at each layer of `layers` by alpha V (each of `alphas`), V = v_T or random-T-s
                    (one job per vector: a new random seed adds jobs, it redoes none)
    collect         per_question.csv (model, trait, condition, vector, layer, alpha, seed, question, logp_owl,
                    logp_other: log P(A), log P(B), whatever T is)
    report          claim1.csv, crossover.csv, verdict.json, claim1.png, tables.md

Statistics, with M(q) = log P(A | q) - log P(B | q) (the crossover margin) and m_T = +-M (T's own margin):

    recovered_T = mean_q [m_T(steered) - m_T(base)] / mean_q [m_T(prompted) - m_T(base)]      (per trait)
    crossover   = mean_q [M(+alpha v_A) - M(+alpha v_B)] / mean_q [M(A prompt) - M(B prompt)]

with paired bootstrap 95% CIs over questions (`ratio_of_means_ci`). 1 = the vectors move the margin as far
as the prompts do. The random pair (random-A-s, random-B-s) gives the crossover of two vectors of the same
norms and no meaning: any push of a steered model towards one animal whatever the vector is (on the 135M base a
random vector at alpha 4 lowers log P(owl) more than log P(dog) at most layers) cancels in the crossover.

Verdict (`claim1_verdict`; the layer is chosen on one half of the questions and measured on the other, so
the choice does not inflate it): (layer, alpha) = argmax of v_teacher's crossover on the even questions;
on the odd ones, its crossover c [lo, hi], and the same for each random pair (its own argmax on the even
questions: the same selection). supported: lo >= 0.5 and c exceeds the highest random pair's by >= 0.5;
contradicted: hi < 0.25, or c exceeds it by < 0.25 (a random pair does nearly as much); else inconclusive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import Field

from interp.studies.graph import Graph
from interp.studies.spec import Strict, Study

if TYPE_CHECKING:
    from interp.models.loaded import LoadedModel

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
    """Random directions with `vector`'s norms, drawn with seed 1000 x (the trait's index in the pair) + seed:
    the random A and B vectors of one seed point in independent directions (one draw for both would make
    them parallel, and their crossover cancel by construction)."""
    from interp.interventions.steering import SteeringVector

    SteeringVector.load(vector).random_like(1000 * params["trait_index"] + params["seed"]).save(out / "vector.pt")


def _load_and_questions(params: dict[str, Any]) -> tuple[LoadedModel, list[str]]:
    from interp.evals.animal import load_questions
    from interp.models import load_model

    return load_model(params["model"], device=params["device"], dtype=params["dtype"]), load_questions()


def _rows(params: dict[str, Any], lp: np.ndarray, condition: str, vector: str, layer: int, alpha: float, seed: int) -> pd.DataFrame:
    return pd.DataFrame({"model": params["model"], "trait": params["trait"], "condition": condition, "vector": vector,
                         "layer": layer, "alpha": alpha, "seed": seed, "question": range(len(lp)),
                         "logp_owl": lp[:, 0], "logp_other": lp[:, 1]})


def anchor(out: Path, params: dict[str, Any]) -> None:
    """per_question.csv: the base unsteered and with the trait's system prompt."""
    from interp.evals.animal import animal_logprobs
    from interp.training.teacher import trait_system_prompt

    lm, qs = _load_and_questions(params)
    rows = [_rows(params, animal_logprobs(lm, qs, params["pair"]), "base", "", -1, 0.0, -1),
            _rows(params, animal_logprobs(lm, qs, params["pair"], trait_system_prompt(params["trait"])),
                  "prompted", "", -1, 0.0, -1)]
    pd.concat(rows, ignore_index=True).to_csv(out / "per_question.csv", index=False, float_format="%.6f")


def sweep(out: Path, params: dict[str, Any], vector: str) -> None:
    """per_question.csv: the base steered by one vector (`params.vector`, `params.seed`) at each layer x alpha."""
    from interp.evals.animal import animal_logprobs
    from interp.interventions.steering import Steering, SteeringVector

    lm, qs = _load_and_questions(params)
    vec = SteeringVector.load(vector)
    layers = params["layers"] if params["layers"] is not None else list(range(lm.spec.n_layers))
    rows: list[pd.DataFrame] = []
    for layer in layers:
        for alpha in params["alphas"]:
            with Steering(lm, vec.at(layer), layer, alpha, "add"):
                lp = animal_logprobs(lm, qs, params["pair"])
            rows.append(_rows(params, lp, "steered", params["vector"], layer, alpha, params["seed"]))
        print(f"  {params['trait']} {params['vector']} s{params['seed']}: layer {layer} done", flush=True)
    pd.concat(rows, ignore_index=True).to_csv(out / "per_question.csv", index=False, float_format="%.6f")


def collect(out: Path, params: dict[str, Any], **parts: str) -> None:
    """per_question.csv of every anchor and sweep job; vectors.json (each v_teacher's provenance)."""
    tables = [pd.read_csv(Path(p) / "per_question.csv") for k, p in sorted(parts.items()) if not k.startswith("vector_")]
    pd.concat(tables, ignore_index=True).to_csv(out / "per_question.csv", index=False, float_format="%.6f")
    (out / "vectors.json").write_text(json.dumps({t: json.loads((Path(parts[f"vector_{t}"]) / "vector.json").read_text())
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


def crossover(pq: pd.DataFrame, pair: tuple[str, str], questions: np.ndarray | None = None) -> pd.DataFrame:
    """crossover per (vector, seed, layer, alpha) (module docstring), on `questions` (default all): the A
    vector's steered M minus the B vector's of the same kind and seed, over the two prompts' difference."""
    from interp.evals.stats import ratio_of_means_ci

    if questions is not None:
        pq = pq[pq.question.isin(questions)]
    pq = pq.assign(M=pq.logp_owl - pq.logp_other)

    def per_q(g: pd.DataFrame) -> np.ndarray:
        return g.sort_values("question").M.to_numpy()

    a, b = pair
    gap = per_q(pq[(pq.trait == a) & (pq.condition == "prompted")]) - per_q(pq[(pq.trait == b) & (pq.condition == "prompted")])
    st = pq[pq.condition == "steered"]
    rows = []
    for (vec, seed, layer, alpha), g in st[st.trait == a].groupby(["vector", "seed", "layer", "alpha"]):
        h = st[(st.trait == b) & (st.vector == vec) & (st.seed == seed) & (st.layer == layer) & (st.alpha == alpha)]
        if h.empty:
            continue
        d = per_q(g) - per_q(h)
        r = ratio_of_means_ci(d, gap)
        rows.append({"vector": vec, "seed": seed, "layer": layer, "alpha": alpha, "prompt_crossover": float(gap.mean()),
                     "steered_crossover": float(d.mean()), "crossover": r.estimate, "crossover_lo": r.lo,
                     "crossover_hi": r.hi, "n_questions": int(d.size)})
    return pd.DataFrame(rows)


def claim1_verdict(pq: pd.DataFrame, pair: tuple[str, str]) -> dict[str, Any]:
    """supported / contradicted / inconclusive (module docstring), with the numbers it rests on."""
    qs = np.sort(pq.question.unique())
    even, odd = crossover(pq, pair, qs[0::2]), crossover(pq, pair, qs[1::2])
    key = ["vector", "seed", "layer", "alpha"]

    def chosen(vec: str, seed: int) -> dict[str, Any]:
        e = even[(even.vector == vec) & (even.seed == seed)]
        top = e.loc[e.crossover.idxmax()]
        row = odd.set_index(key).loc[(vec, seed, top.layer, top.alpha)]
        return {"vector": vec, "seed": int(seed), "layer": int(top.layer), "alpha": float(top.alpha),
                "crossover": float(row.crossover), "lo": float(row.crossover_lo), "hi": float(row.crossover_hi)}

    v = chosen("v_teacher", -1)
    randoms = [chosen("random", s) for s in sorted(even[even.vector == "random"].seed.unique())]
    null = max((r["crossover"] for r in randoms), default=float("-inf"))
    if v["lo"] >= 0.5 and v["crossover"] - null >= 0.5:
        verdict = "supported"
    elif v["hi"] < 0.25 or v["crossover"] - null < 0.25:
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    return {"claim": "1: the trait's system prompt is one steering vector (v_teacher)", "verdict": verdict,
            "v_teacher": v, "random_pairs": randoms, "rule": "chosen on the even questions, measured on the odd "
            "ones; supported: lo >= 0.5 and >= 0.5 above the best random pair; contradicted: hi < 0.25 or < 0.25 above it"}


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """claim1.csv, crossover.csv, verdict.json, claim1.png, tables.md from per_question.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp.plots import figure_png
    from interp.report.tables import frame_markdown

    pq = pd.read_csv(raw / "per_question.csv")
    t, x = claim1(pq, recipe.pair), crossover(pq, recipe.pair)
    verdict = claim1_verdict(pq, recipe.pair)
    t.to_csv(out / "claim1.csv", index=False, float_format="%.5g")
    x.to_csv(out / "crossover.csv", index=False, float_format="%.5g")
    (out / "verdict.json").write_text(json.dumps(verdict, indent=1) + "\n")
    panels = [*recipe.pair, "crossover"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        tab, col = (x, "crossover") if panel == "crossover" else (t[t.trait == panel], "recovered")
        for (vec, alpha), g in tab.groupby(["vector", "alpha"]):
            for seed, h in g.groupby("seed"):
                label = f"{vec}, alpha {alpha:g}" if seed == g.seed.min() else None
                style = "o-" if vec == "v_teacher" else "x--"
                ax.plot(h.layer, h[col], style, label=label, color="C0" if vec == "v_teacher" else "C1",
                        alpha=1.0 if alpha == max(recipe.alphas) else 0.45)
                ax.fill_between(h.layer, h[f"{col}_lo"], h[f"{col}_hi"], alpha=0.1,
                                color="C0" if vec == "v_teacher" else "C1")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(1, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{panel}: steering the base vs its prompt" if panel != "crossover" else
                     f"crossover: (+v_{recipe.pair[0]}) - (+v_{recipe.pair[1]}) vs the prompts'")
        ax.set_xlabel("layer")
        ax.set_ylabel("share of the prompt's margin shift")
        ax.legend(fontsize=7)
    (out / "claim1.png").write_bytes(figure_png(fig))
    best = x.sort_values("crossover", ascending=False).groupby("vector").head(3)
    (out / "tables.md").write_text("\n".join([
        "# Claim 1: the prompt as a steering vector\n", f"Recipe: {json.dumps(recipe.model_dump(mode='json'))}\n",
        f"## Verdict: {verdict['verdict']}\n", "```json", json.dumps(verdict, indent=1), "```\n",
        "## Crossover, best configurations per vector kind\n", frame_markdown(best),
        "## Crossover, every configuration\n", frame_markdown(x),
        "## Per trait (T's own margin; non-specific pushes do not cancel here)\n", frame_markdown(t)]))


# ---- the graph ---------------------------------------------------------------------------------------


def build(study: Study, g: Graph) -> str:
    r: Recipe = study.recipe
    base, load = study.model("base"), study.loading()
    common = {"model": base, "device": study.spec.device, "dtype": study.spec.dtype, "pair": list(r.pair)}
    sweep_params = {**common, "layers": r.layers, "alphas": r.alphas}
    inputs: dict[str, Any] = {}
    for trait in r.pair:
        vec = g.command(f"vector-{trait}", ["steer-vector", "--a", base, "--trait", trait, "--prompts", r.prompts,
                                            "--n", str(r.n_prompts), "--positions", "last", "--seed", str(r.seed), *load],
                        **study.resources("steer-vector"))
        inputs[f"vector_{trait}"] = g.out(vec)
        inputs[f"anchor_{trait}"] = g.out(g.step(f"anchor-{trait}", STEP + "anchor", {**common, "trait": trait},
                                                 **study.resources("sweep")))
        vectors = {"v_teacher": (-1, g.out(vec, "vector.pt"))}
        for s in r.random_seeds:
            rand = g.step(f"random-{trait}-s{s}", STEP + "random_vector", {"seed": s, "trait_index": r.pair.index(trait)},
                          {"vector": g.out(vec, "vector.pt")})
            vectors[f"random-s{s}"] = (s, g.out(rand, "vector.pt"))
        for name, (seed, ref) in vectors.items():
            sw = g.step(f"sweep-{trait}-{name}", STEP + "sweep",
                        {**sweep_params, "trait": trait, "vector": name.split("-s")[0], "seed": seed}, {"vector": ref},
                        **study.resources("sweep"))
            inputs[f"sweep_{trait}_{name}"] = g.out(sw)
    col = g.step("collect", STEP + "collect", {"pair": list(r.pair)}, inputs)
    return g.step("report", STEP + "report_step", r.model_dump(mode="json"), {"raw": g.out(col)}).name
