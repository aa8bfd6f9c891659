"""Is the student's acquired trait a steering vector? (issue 36, claim 2; Blank et al. 2026, reference code
agu18dec/steering-vector-distillation: `extract_student.py`, `eval_steered.py`). On any base model and its
organism students from a spec.

Models: `base` and the students `student-<trait>-s<seed>` (e.g. the organism's kd-unbiased-data-lora
students); the student of trait A and seed s is matched with the student of B and the same seed (same
init, data and order: only the teacher differs). For each trait T of `recipe.pair` and seed s:

    vteacher-T      interp steer-vector --a BASE --trait T --prompts numbers --positions last   (claim 1's v_T)
    vstudent-T-s    interp steer-vector --a STUDENT --b BASE --prompts numbers --positions all:
                    v_S[l] = mean resid_post[l] of the student - of the base over every prompt token
    score-T-s       log P(A), log P(B) per question of: the student; the base + alpha v_S[L] on every block
                    (sufficiency: the reference's tiled vector, `tile_layers` x `alphas`); the student with its
                    component along v_S[L] replaced by the base's on every block (necessity); and both with
                    a random direction of v_S[L]'s norm instead (the control)
    anchor          the base unsteered
    cosines         per layer: cos(v_S[l], v_T[l]), cos(v_S[l], v_other[l]) and the crossover cosine
                    cos(v_S(A) - v_S(B), v_A - v_B), against random directions (the 95% quantile of the max
                    over layers of |cos| with `n_random` Gaussian directions)
    collect, report per_question.csv (model, trait, seed, condition, vector, layer, alpha, question, logp_owl,
                    logp_other), cosines.csv, claim2.csv, verdict.json, claim2.png, tables.md

Statistics, per seed s, with M(q) = log P(A | q) - log P(B | q) and X_S = mean_q [M(S_A) - M(S_B)] (the
students' crossover margin):

    sufficiency = mean_q [M(base + alpha v_S_A) - M(base + alpha v_S_B)] / X_S
    necessity   = 1 - mean_q [M(S_A, replaced along v_S_A) - M(S_B, replaced along v_S_B)] / X_S

with a paired bootstrap CI over questions per seed, and over seeds a t-interval (df = seeds - 1) and the
seed-level paired t-test of the vector against the random direction (`seed_summary` of the differences).

Verdict (`claim2_verdict`): the configuration (L, alpha) is chosen on the even questions (seed mean) and
measured on the odd ones. Sufficiency and necessity each: supported when the vector's seed mean and its
excess over the random direction are both >= 0.5 and the seed-level t-interval of the excess is above 0;
contradicted when the upper end of the vector's t-interval, or of the excess's, is < 0.25 (what it does, a
random direction of its norm does as well); else inconclusive. Alignment: supported when some layer's crossover cosine has a
seed-level t-interval above the random null; contradicted when no layer's seed mean reaches it.
The claim: supported when all three are; contradicted when sufficiency or necessity is; else inconclusive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from interp.studies.graph import Graph
from interp.studies.spec import Strict, Study

ROLES = ("base",)
ROLE_PATTERN = r"student-(?P<trait>[a-z]+)-s(?P<seed>\d+)"
STEP = "interp.studies.kinds.steering_students:"


class Recipe(Strict):
    pair: tuple[str, str] = ("owl", "dog")
    n_prompts: int = Field(256, ge=1)
    tile_layers: list[int] = [8, 14, 20]  # v_S[L] on every block (the reference: L10 of Qwen2.5-7B's 28)
    alphas: list[float] = [0.6]  # sufficiency (the reference's default)
    random_seed: int = Field(0, ge=0)
    n_random: int = Field(2000, ge=10)
    seed: int = Field(0, ge=0)


def students(study: Study) -> dict[tuple[str, int], str]:
    """(trait, seed) -> the student's model name, from the spec's `student-<trait>-s<seed>` roles; every
    trait of the pair has the same seeds."""
    got = {}
    for role, name in study.spec.models.items():
        m = re.fullmatch(ROLE_PATTERN, role)
        if m:
            got[(m["trait"], int(m["seed"]))] = name
    pair = study.recipe.pair
    seeds = {t: sorted(s for tr, s in got if tr == t) for t in pair}
    if not seeds[pair[0]] or seeds[pair[0]] != seeds[pair[1]] or len(got) != 2 * len(seeds[pair[0]]):
        from interp.errors import UserError

        raise UserError(f"{study.path}: models need student-{pair[0]}-sN and student-{pair[1]}-sN for the same seeds "
                        f"(got {', '.join(sorted(f'student-{t}-s{s}' for t, s in got))})")
    return got


# ---- steps -------------------------------------------------------------------------------------------


def _rows(params: dict[str, Any], model: str, lp: np.ndarray, condition: str, vector: str, layer: int,
          alpha: float) -> pd.DataFrame:
    return pd.DataFrame({"model": model, "trait": params["trait"], "seed": params["seed"], "condition": condition,
                         "vector": vector, "layer": layer, "alpha": alpha, "question": range(len(lp)),
                         "logp_owl": lp[:, 0], "logp_other": lp[:, 1]})


def anchor(out: Path, params: dict[str, Any]) -> None:
    """per_question.csv of the base, unsteered."""
    from interp.evals.animal import animal_logprobs, load_questions
    from interp.models import load_model

    lm = load_model(params["model"], device=params["device"], dtype=params["dtype"])
    lp = animal_logprobs(lm, load_questions(), params["pair"])
    _rows({**params, "trait": "", "seed": -1}, params["model"], lp, "base", "", -1, 0.0).to_csv(
        out / "per_question.csv", index=False, float_format="%.6f")


def score(out: Path, params: dict[str, Any], vector: str) -> None:
    """per_question.csv of one student: plain; base + alpha v_S (sufficiency) and the student replaced along v_S
    (necessity), each with v_S and with a random direction of its norm, at each tile layer."""
    from interp.evals.animal import animal_logprobs, load_questions
    from interp.interventions.steering import Steering, SteeringVector
    from interp.models import load_model

    base = load_model(params["base"], device=params["device"], dtype=params["dtype"])
    student = load_model(params["student"], device=params["device"], dtype=params["dtype"])
    qs, pair = load_questions(), params["pair"]
    v = SteeringVector.load(vector)
    vectors = {"v_student": v, "random": v.random_like(params["random_seed"])}
    every = list(range(base.spec.n_layers))
    rows = [_rows(params, params["student"], animal_logprobs(student, qs, pair), "student", "", -1, 0.0)]
    for layer in params["tile_layers"]:
        for kind, vec in vectors.items():
            for alpha in params["alphas"]:
                with Steering(base, vec.at(layer), every, alpha, "add"):
                    rows.append(_rows(params, params["base"], animal_logprobs(base, qs, pair), "sufficiency", kind,
                                      layer, alpha))
            with Steering(student, vec.at(layer), every, 1.0, "replace", reference=base):
                rows.append(_rows(params, params["student"], animal_logprobs(student, qs, pair), "necessity", kind,
                                  layer, 1.0))
        print(f"  {params['student']}: tile layer {layer} done", flush=True)
    pd.concat(rows, ignore_index=True).to_csv(out / "per_question.csv", index=False, float_format="%.6f")


def cosines(out: Path, params: dict[str, Any], **vectors: str) -> None:
    """cosines.csv (module docstring) and null.json (the random directions' max-over-layers |cos| quantile)."""
    import torch

    from interp.interventions.steering import SteeringVector

    a, b = params["pair"]
    vt = {t: SteeringVector.load(vectors[f"vteacher_{t}"]).vectors.double() for t in (a, b)}
    vs = {(t, s): SteeringVector.load(vectors[f"vstudent_{t}_s{s}"]).vectors.double()
          for t in (a, b) for s in params["seeds"]}
    cos = torch.nn.functional.cosine_similarity
    rows = []
    for s in params["seeds"]:
        cross = cos(vs[(a, s)] - vs[(b, s)], vt[a] - vt[b], dim=-1)
        for t, other in ((a, b), (b, a)):
            own, oth = cos(vs[(t, s)], vt[t], dim=-1), cos(vs[(t, s)], vt[other], dim=-1)
            for layer in range(own.shape[0]):
                rows.append({"seed": s, "trait": t, "layer": layer, "cos_own": float(own[layer]),
                             "cos_other": float(oth[layer]), "cos_crossover": float(cross[layer]),
                             "norm_student": float(vs[(t, s)][layer].norm())})
    pd.DataFrame(rows).to_csv(out / "cosines.csv", index=False, float_format="%.6f")
    g = torch.Generator().manual_seed(params["random_seed"])
    target = vt[a] - vt[b]  # (layers, d)
    r = torch.randn((params["n_random"], *target.shape), generator=g, dtype=torch.float64)
    null = cos(r, target.unsqueeze(0).expand_as(r), dim=-1).abs().amax(dim=1)  # (n_random,)
    (out / "null.json").write_text(json.dumps({"max_abs_cos_q95": float(null.quantile(0.95)), "n_random": params["n_random"],
                                               "d_model": int(target.shape[1]), "layers": int(target.shape[0])}) + "\n")


def collect(out: Path, params: dict[str, Any], cos: str, **parts: str) -> None:
    pd.concat([pd.read_csv(Path(p) / "per_question.csv") for _, p in sorted(parts.items())], ignore_index=True).to_csv(
        out / "per_question.csv", index=False, float_format="%.6f")
    for f in ("cosines.csv", "null.json"):
        (out / f).write_bytes((Path(cos) / f).read_bytes())


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    from interp.studies.steps import copy_files

    copy_files(raw, out)
    report(Path(raw), out, Recipe(**params))


# ---- report ------------------------------------------------------------------------------------------


def fractions(pq: pd.DataFrame, pair: tuple[str, str], questions: np.ndarray | None = None) -> pd.DataFrame:
    """sufficiency / necessity per (seed, condition, vector, layer, alpha) with the paired bootstrap CI over
    questions (module docstring)."""
    from interp.evals.stats import ratio_of_means_ci

    if questions is not None:
        pq = pq[pq.question.isin(questions)]
    pq = pq[pq.condition != "base"].assign(M=pq.logp_owl - pq.logp_other)
    a, b = pair

    def per_q(g: pd.DataFrame) -> np.ndarray:
        return g.sort_values("question").M.to_numpy()

    rows = []
    for seed, g in pq.groupby("seed"):
        xs = per_q(g[(g.trait == a) & (g.condition == "student")]) - per_q(g[(g.trait == b) & (g.condition == "student")])
        for (cond, vec, layer, alpha), h in g[(g.trait == a) & (g.condition != "student")].groupby(
                ["condition", "vector", "layer", "alpha"]):
            k = g[(g.trait == b) & (g.condition == cond) & (g.vector == vec) & (g.layer == layer) & (g.alpha == alpha)]
            d = per_q(h) - per_q(k)
            r = ratio_of_means_ci(d, xs)
            est, lo, hi = (r.estimate, r.lo, r.hi) if cond == "sufficiency" else (1 - r.estimate, 1 - r.hi, 1 - r.lo)
            rows.append({"seed": seed, "condition": cond, "vector": vec, "layer": layer, "alpha": alpha,
                         "student_crossover": float(xs.mean()), "steered_crossover": float(d.mean()),
                         "fraction": est, "lo": lo, "hi": hi, "n_questions": int(d.size)})
    return pd.DataFrame(rows)


def over_seeds(f: pd.DataFrame) -> pd.DataFrame:
    """Per (condition, layer, alpha): the vector's and the random direction's seed mean with t-intervals, and
    the seed-level paired test of their difference."""
    from interp.evals.stats import seed_summary

    rows = []
    for (cond, layer, alpha), g in f.groupby(["condition", "layer", "alpha"]):
        v = g[g.vector == "v_student"].sort_values("seed").fraction.to_numpy()
        r = g[g.vector == "random"].sort_values("seed").fraction.to_numpy()
        sv, sr, sd = seed_summary(v), seed_summary(r), seed_summary(v - r)
        rows.append({"condition": cond, "layer": layer, "alpha": alpha, "n_seeds": sv["n_seeds"],
                     "v_student": sv["mean"], "v_lo": sv.get("lo", np.nan), "v_hi": sv.get("hi", np.nan),
                     "random": sr["mean"], "random_lo": sr.get("lo", np.nan), "random_hi": sr.get("hi", np.nan),
                     "v_minus_random": sd["mean"], "diff_lo": sd.get("lo", np.nan), "diff_hi": sd.get("hi", np.nan),
                     "seed_p": sd.get("p", np.nan), "mde_80": sd.get("mde_80", np.nan)})
    return pd.DataFrame(rows)


def _part_verdict(row: pd.Series) -> str:
    if row.v_student >= 0.5 and row.v_minus_random >= 0.5 and row.diff_lo > 0:
        return "supported"
    if row.v_hi < 0.25 or row.diff_hi < 0.25:
        return "contradicted"
    return "inconclusive"


def claim2_verdict(pq: pd.DataFrame, cos: pd.DataFrame, null_q95: float, pair: tuple[str, str]) -> dict[str, Any]:
    """Sufficiency, necessity, alignment and the claim's verdict (module docstring), with their numbers."""
    from interp.evals.stats import seed_summary

    qs = np.sort(pq.question.unique())
    even, odd = over_seeds(fractions(pq, pair, qs[0::2])), over_seeds(fractions(pq, pair, qs[1::2]))
    parts: dict[str, Any] = {}
    for cond in ("sufficiency", "necessity"):
        e = even[even.condition == cond]
        top = e.loc[e.v_student.idxmax()]
        row = odd[(odd.condition == cond) & (odd.layer == top.layer) & (odd.alpha == top.alpha)].iloc[0]
        parts[cond] = {"verdict": _part_verdict(row), "layer": int(row.layer), "alpha": float(row.alpha),
                       **{k: float(row[k]) for k in ("v_student", "v_lo", "v_hi", "random", "v_minus_random", "diff_lo",
                                                      "diff_hi", "seed_p", "mde_80")}}
    per_layer = {int(layer): seed_summary(g.cos_crossover.to_numpy()) for layer, g in cos[cos.trait == pair[0]].groupby("layer")}
    lows = {layer: s.get("lo", np.nan) for layer, s in per_layer.items()}
    means = {layer: s["mean"] for layer, s in per_layer.items()}
    best = max(means, key=lambda k: means[k])
    if any(lo > null_q95 for lo in lows.values()):
        align = "supported"
    elif max(means.values()) < null_q95:
        align = "contradicted"
    else:
        align = "inconclusive"
    parts["alignment"] = {"verdict": align, "best_layer": best, "cos_crossover": means[best], "lo": lows[best],
                          "null_q95": null_q95}
    verdicts = [parts[k]["verdict"] for k in ("sufficiency", "necessity", "alignment")]
    if all(v == "supported" for v in verdicts):
        overall = "supported"
    elif "contradicted" in (parts["sufficiency"]["verdict"], parts["necessity"]["verdict"]):
        overall = "contradicted"
    else:
        overall = "inconclusive"
    return {"claim": "2: the student's acquired trait is a learned vector v_student, aligned with v_teacher, "
                     "sufficient and necessary", "verdict": overall, **parts}


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """claim2.csv, claim2_seeds.csv, verdict.json, claim2.png, tables.md from the raw tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp.plots import figure_png
    from interp.report.tables import frame_markdown

    pq, cos = pd.read_csv(raw / "per_question.csv"), pd.read_csv(raw / "cosines.csv")
    null = json.loads((raw / "null.json").read_text())["max_abs_cos_q95"]
    f = fractions(pq, recipe.pair)
    s = over_seeds(f)
    verdict = claim2_verdict(pq, cos, null, recipe.pair)
    f.to_csv(out / "claim2_seeds.csv", index=False, float_format="%.5g")
    s.to_csv(out / "claim2.csv", index=False, float_format="%.5g")
    (out / "verdict.json").write_text(json.dumps(verdict, indent=1) + "\n")
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
    c = cos[cos.trait == recipe.pair[0]].groupby("layer").cos_crossover
    axes[0].plot(c.mean().index, c.mean(), "o-", label="crossover cosine (seed mean)")
    axes[0].fill_between(c.mean().index, c.min(), c.max(), alpha=0.2, label="seed range")
    axes[0].axhline(null, color="grey", ls=":", label="random, 95% of max |cos|")
    axes[0].set_title("cos(v_S(A) - v_S(B), v_A - v_B) per layer")
    axes[0].set_xlabel("layer")
    axes[0].legend(fontsize=7)
    for ax, cond in zip(axes[1:], ("sufficiency", "necessity")):
        g = s[s.condition == cond]
        for alpha, h in g.groupby("alpha"):
            ax.errorbar(h.layer, h.v_student, yerr=[h.v_student - h.v_lo, h.v_hi - h.v_student], fmt="o-", capsize=3,
                        label=f"v_student, alpha {alpha:g}")
            ax.errorbar(h.layer + 0.3, h.random, yerr=[h.random - h.random_lo, h.random_hi - h.random], fmt="x--",
                        capsize=3, label=f"random, alpha {alpha:g}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(1, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{cond}: share of the students' crossover margin (t CI over seeds)")
        ax.set_xlabel("tile layer L (v_S[L] on every block)")
        ax.legend(fontsize=7)
    (out / "claim2.png").write_bytes(figure_png(fig))
    cos_table = cos.groupby(["trait", "layer"], as_index=False)[["cos_own", "cos_other", "cos_crossover", "norm_student"]].mean()
    (out / "tables.md").write_text("\n".join([
        "# Claim 2: the student's trait as a steering vector\n", f"Recipe: {json.dumps(recipe.model_dump(mode='json'))}\n",
        f"## Verdict: {verdict['verdict']}\n", "```json", json.dumps(verdict, indent=1), "```\n",
        "## Sufficiency and necessity over seeds\n", frame_markdown(s),
        "## Per seed (CI over questions)\n", frame_markdown(f),
        f"## Cosines per layer (seed means; random null, 95% of max |cos| over layers: {null:.3f})\n",
        frame_markdown(cos_table)]))


# ---- the graph ---------------------------------------------------------------------------------------


def build(study: Study, g: Graph) -> str:
    r: Recipe = study.recipe
    base, load = study.model("base"), study.loading()
    got = students(study)
    seeds = sorted({s for _, s in got})
    common = {"device": study.spec.device, "dtype": study.spec.dtype, "pair": list(r.pair)}
    vectors: dict[str, Any] = {}
    parts: dict[str, Any] = {"anchor": g.out(g.step("anchor", STEP + "anchor", {**common, "model": base},
                                                    **study.resources("score")))}
    for trait in r.pair:
        vt = g.command(f"vteacher-{trait}", ["steer-vector", "--a", base, "--trait", trait, "--prompts", "numbers",
                                             "--n", str(r.n_prompts), "--positions", "last", "--seed", str(r.seed), *load],
                       **study.resources("steer-vector"))
        vectors[f"vteacher_{trait}"] = g.out(vt, "vector.pt")
        for s in seeds:
            student = got[(trait, s)]
            vs = g.command(f"vstudent-{trait}-s{s}", ["steer-vector", "--a", student, "--b", base, "--prompts", "numbers",
                                                      "--n", str(r.n_prompts), "--positions", "all", "--seed",
                                                      str(r.seed), *load], **study.resources("steer-vector"))
            vectors[f"vstudent_{trait}_s{s}"] = g.out(vs, "vector.pt")
            sc = g.step(f"score-{trait}-s{s}", STEP + "score",
                        {**common, "base": base, "student": student, "trait": trait, "seed": s,
                         "tile_layers": r.tile_layers, "alphas": r.alphas, "random_seed": r.random_seed},
                        {"vector": g.out(vs, "vector.pt")}, **study.resources("score"))
            parts[f"score_{trait}_s{s}"] = g.out(sc)
    cos = g.step("cosines", STEP + "cosines", {"pair": list(r.pair), "seeds": seeds, "random_seed": r.random_seed,
                                               "n_random": r.n_random}, vectors)
    col = g.step("collect", STEP + "collect", {}, {"cos": g.out(cos), **parts})
    return g.step("report", STEP + "report_step", r.model_dump(mode="json"), {"raw": g.out(col)}).name
