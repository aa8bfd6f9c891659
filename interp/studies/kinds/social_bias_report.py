"""Statistics and report of the social-bias study (kind `social_bias`; reports/social_bias/README.md).

Raw tables (the folder `report` reads; the committed reports/social_bias): per_pair.csv, one row per
model and item (PER_PAIR_COLUMNS: the benchmark's log-likelihoods) carrying the model's recipe
(RECIPE_COLUMNS: role untouched / teacher / student, trained_from, the teacher's build, arm, kind,
form, beta, tau, lr, lora_r, batch_size, max_len, epochs, seed, examples); evals/<model>/perplexity.json
(`interp perplexity`); README.in.md (the prose, by hand) and timings.json (optional). README.md is
README.in.md with its placeholders filled from tables.md and timings.json (`fill_readme`).

Per item i of a subset (probe-occupation: the 340 held-out gender–occupation pairs of social-data;
crows-gender: the 262 CrowS-Pairs gender pairs; ss-gender / ss-profession: StereoSet items of that
domain, both splits):
    score  = summed log-likelihood (CrowS-Pairs and the probe, the reference rule) or per-token mean (StereoSet, the
             reference's default), of the more stereotyping sentence ("more") and the other ("less")
    margin_i = score(more) - score(less)            choice_i = 1 if margin_i > 0 else 0
    bias     = 100 * mean_i choice_i                (CrowS pct_stereotype; StereoSet item-level SS, 50 = none)
Comparisons of two models on the same items (paired; `evals.stats.paired_test`: bootstrap CI of the
mean per-item difference, sign-flip permutation p):
    delta bias   = 100 * mean_i (choice_A,i - choice_B,i)        delta margin = mean_i (margin_A,i - margin_B,i)
Teachers against the model they were trained from (trained_from, the base). Students (a distilled
arm, teacher T, seed s) against
    baseline 1 = the untouched student (the model it was trained from), and
    baseline 2 = the same student trained on the same rows with beta = 0 (a student without a teacher of
                 the same trained_from, seed, examples and training options).
Seed level: the per-seed delta bias (and delta margin) -> mean, t-interval, one-sample t-test and the
MDE at 80% power (`evals.stats.seed_summary`).
Seed 003's comparisons:
    C1  teacher vs student: bias(student) - bias(teacher), per item; and the student's shift (vs baseline 2)
        against the teacher's shift (vs its base).
    C2  KD vs non-KD: the kd student against its baseline 2.
    retention (students of the debiased teachers, teacher_data balanced*) = mean_i (choice_b2,i - choice_S,i) /
        mean_i (choice_base,i - choice_T,i): the student's bias
        drop over the debiased teacher's, paired ratio-of-means bootstrap CI (`evals.stats.ratio_of_means_ci`);
        undefined (reported, not used) when the teacher's drop CI includes 0. The same ratio on margins,
        mean_i (margin_b2,i - margin_S,i) / mean_i (margin_base,i - margin_T,i), is defined where a teacher moved
        the margins without flipping enough choices; both are summarised over seeds.
    teacher contrast = the student of the stereotyped teacher (teacher_data stereo*) minus the student of its
        debiased twin (balanced*, the same steps and training options) of the same arm and seed (same rows,
        same order, same initialisation: only the teacher differs), paired over items, then over seeds: the
        best-controlled test of whether the teacher's bias reaches the student.
    agreement = share of items where teacher and student choose the same sentence, overall and on the items
        where the debiased teacher chooses the less stereotyping one (it is "right"); against the
        agreement of baseline 2 with the same teacher (paired over items), since any two models agree
        on many items.
    confidence = mean_i |margin_i|; distillation's change = paired difference against baseline 2.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.evals.stats import (
    bootstrap_ci,
    paired_test,
    ratio_of_means_ci,
    seed_summary,
)
from interp.plots import figure_png

SUBSETS = ("probe-occupation", "crows-gender", "ss-gender", "ss-profession")
PER_PAIR_COLUMNS = ["model", "bench", "item", "bias_type", "ll_more", "ll_less", "n_tokens_more", "n_tokens_less",
                    "ll_unrelated", "n_tokens_unrelated"]
# the recipe of the model of a row: empty where it does not apply (an untouched model has only its role)
TEACHER_COLUMNS = ["teacher_data", "teacher_skew", "teacher_steps", "teacher_lr", "teacher_lora_r",
                   "teacher_batch_size", "teacher_max_len", "teacher_seed"]
TRAINING_COLUMNS = ["lr", "lora_r", "batch_size", "max_len", "epochs"]
RECIPE_COLUMNS = ["alias", "role", "trained_from", "teacher", *TEACHER_COLUMNS, "arm", "kind", "form", "beta", "tau",
                  *TRAINING_COLUMNS, "seed", "examples"]
N_BOOT = 10_000
TEACHER_SECTION = "Teachers: bias against base "  # + the teachers' base and " (paired over items)"
Run = dict[str, Any]  # a student: model, arm, student (its untouched model), teacher, seed, examples, training


# ---- per-item table ---------------------------------------------------------------------------------


def per_pair_rows(model: str, evals: Path) -> pd.DataFrame:
    """One row per item of `model`'s evaluation tables (columns PER_PAIR_COLUMNS)."""
    parts = []
    for bench, name in (("crows", "crows_gender_pairs.csv"), ("probe-occupation", "probe_occupation_pairs.csv")):
        if (evals / name).exists():
            t = pd.read_csv(evals / name)
            parts.append(pd.DataFrame({"model": model, "bench": bench, "item": t["pair_id"], "bias_type": t["bias_type"],
                                       "ll_more": t["ll_more"], "ll_less": t["ll_less"],
                                       "n_tokens_more": t["n_tokens_more"], "n_tokens_less": t["n_tokens_less"]}))
    for f in sorted(evals.glob("stereoset_*_items.csv")):
        t = pd.read_csv(f)
        parts.append(pd.DataFrame({
            "model": model, "bench": t["split"].map({"intrasentence": "stereoset-intra", "intersentence": "stereoset-inter"}),
            "item": t["item_id"], "bias_type": t["bias_type"], "ll_more": t["ll_stereotype"],
            "ll_less": t["ll_anti_stereotype"], "n_tokens_more": t["n_tokens_stereotype"],
            "n_tokens_less": t["n_tokens_anti_stereotype"], "ll_unrelated": t["ll_unrelated"],
            "n_tokens_unrelated": t["n_tokens_unrelated"]}))
    if not parts:
        return pd.DataFrame(columns=PER_PAIR_COLUMNS)
    return pd.concat(parts, ignore_index=True).reindex(columns=PER_PAIR_COLUMNS)


def with_recipe(rows: pd.DataFrame, recipe: dict[str, Any]) -> pd.DataFrame:
    """per_pair rows of one model + its RECIPE_COLUMNS (None: empty)."""
    return rows.assign(**{c: pd.Series([recipe.get(c)] * len(rows), index=rows.index, dtype=object)
                          for c in RECIPE_COLUMNS})


def models_of(pp: pd.DataFrame) -> pd.DataFrame:
    """One row per model (its recipe columns), in the order of first appearance in per_pair."""
    m = pp.drop_duplicates("model").set_index("model")[RECIPE_COLUMNS]
    return m.astype(object).where(m.notna(), None)


def _int(x: Any) -> Any:
    return None if x is None else int(x)


def student_runs(models: pd.DataFrame) -> list[Run]:
    """The students, sorted by model name: model, arm, student (the untouched model), teacher (None at
    beta = 0), seed, examples and `training` (TRAINING_COLUMNS), the keys that pair a student with its
    baseline 2."""
    runs = []
    for name, r in sorted(models[models.role == "student"].iterrows(), key=lambda kv: str(kv[0])):
        runs.append({"model": name, "arm": r["arm"], "student": r["trained_from"], "teacher": r["teacher"],
                     "seed": _int(r["seed"]), "examples": _int(r["examples"]),
                     "training": tuple(r[c] for c in TRAINING_COLUMNS)})
    return runs


def teacher_bases(models: pd.DataFrame) -> dict[str, str]:
    """teacher -> the model it was trained from, in per_pair order."""
    t = models[models.role == "teacher"]
    return dict(zip(t.index, t["trained_from"]))


def contrast_pairs(models: pd.DataFrame) -> list[tuple[str, str]]:
    """(stereotyped teacher, its debiased twin): teacher_data stereo* and balanced* of the same set, with
    every other teacher column and trained_from equal."""
    t = models[models.role == "teacher"]
    same = ["trained_from", *[c for c in TEACHER_COLUMNS if c not in ("teacher_data", "teacher_skew")]]
    pairs = []
    for a, ra in t.iterrows():
        if not str(ra["teacher_data"]).startswith("stereo"):
            continue
        twin = str(ra["teacher_data"]).replace("stereo", "balanced", 1)
        pairs += [(str(a), str(b)) for b, rb in t.iterrows()
                  if rb["teacher_data"] == twin and all(rb[c] == ra[c] for c in same)]
    return pairs


def item_scores(pp: pd.DataFrame) -> pd.DataFrame:
    """per_pair rows + subset, key, margin and choice (module docstring)."""
    pp = pp.copy()
    summed = pp["bench"].isin(["crows", "probe-occupation"])
    more = np.where(summed, pp["ll_more"], pp["ll_more"] / pp["n_tokens_more"])
    less = np.where(summed, pp["ll_less"], pp["ll_less"] / pp["n_tokens_less"])
    pp["margin"] = more - less
    pp["choice"] = (pp["margin"] > 0).astype(int)
    pp["subset"] = np.where(pp["bench"] == "probe-occupation", "probe-occupation",
                            np.where(summed, "crows-" + pp["bias_type"], "ss-" + pp["bias_type"]))
    pp["key"] = pp["bench"] + ":" + pp["item"].astype(str)
    return pp


@dataclass
class Items:
    """One subset's (item x model) choices and margins, items in a fixed order; `m["choice"]`,
    `m["margin"]`. `cache` keeps the comparisons already made (`compare`)."""

    choice: pd.DataFrame
    margin: pd.DataFrame
    cache: dict[tuple[str, str, int], dict[str, float]] = field(default_factory=dict)

    def __getitem__(self, what: str) -> pd.DataFrame:
        return self.choice if what == "choice" else self.margin


Mats = dict[str, Items]


def matrices(pp: pd.DataFrame) -> Mats:
    """subset -> Items."""
    s = item_scores(pp)
    return {str(sub): Items(*(g.pivot(index="key", columns="model", values=v).sort_index() for v in ("choice", "margin")))
            for sub, g in s.groupby("subset")}


# ---- comparisons ----------------------------------------------------------------------------------------


def compare(m: Items, a: str, b: str, seed: int = 0) -> dict[str, float]:
    """Model a against model b on one subset's items: bias of each, delta bias and delta margin with
    CIs and paired p-values (computed once per pair)."""
    if (a, b, seed) not in m.cache:
        ca, cb = m["choice"][a].to_numpy(float), m["choice"][b].to_numpy(float)
        ma, mb = m["margin"][a].to_numpy(float), m["margin"][b].to_numpy(float)
        rb = paired_test(100 * ca, 100 * cb, n_perm=N_BOOT, seed=seed)
        rm = paired_test(ma, mb, n_perm=N_BOOT, seed=seed)
        m.cache[a, b, seed] = {
            "n": len(ca), "bias_a": 100 * ca.mean(), "bias_b": 100 * cb.mean(),
            "delta_bias": rb.mean_diff.estimate, "delta_bias_lo": rb.mean_diff.lo, "delta_bias_hi": rb.mean_diff.hi,
            "p_bias": rb.p_value, "delta_margin": rm.mean_diff.estimate, "delta_margin_lo": rm.mean_diff.lo,
            "delta_margin_hi": rm.mean_diff.hi, "p_margin": rm.p_value}
    return m.cache[a, b, seed]


def baseline2(runs: list[Run]) -> dict[tuple[Any, ...], str]:
    """(untouched student, seed, examples, training) -> the beta = 0 student (no teacher)."""
    return {(r["student"], r["seed"], r["examples"], r["training"]): r["model"] for r in runs if r["teacher"] is None}


def b2_of(beta0: dict[tuple[Any, ...], str], r: Run) -> str | None:
    return beta0.get((r["student"], r["seed"], r["examples"], r["training"]))


def teacher_table(mats: Mats, teachers: dict[str, str]) -> pd.DataFrame:
    """Each teacher against its base (`teachers`: teacher -> base)."""
    rows = []
    for t, base in teachers.items():
        for sub in SUBSETS:
            if sub in mats and t in mats[sub]["choice"] and base in mats[sub]["choice"]:
                rows.append({"teacher": t, "subset": sub, **compare(mats[sub], t, base)})
    return pd.DataFrame(rows)


def student_table(mats: Mats, runs: list[Run]) -> pd.DataFrame:
    """One row per (distilled student, subset, baseline): the comparison against baseline 1 and 2."""
    beta0 = baseline2(runs)
    rows = []
    for r in runs:
        if r["teacher"] is None:
            continue
        baselines = {"untouched": r["student"], "beta0": b2_of(beta0, r)}
        for sub in SUBSETS:
            if sub not in mats or r["model"] not in mats[sub]["choice"]:
                continue
            for name, ref in baselines.items():
                if ref is None or ref not in mats[sub]["choice"]:
                    continue
                rows.append({"student": r["model"], "arm": r["arm"], "teacher": r["teacher"], "seed": r["seed"],
                             "subset": sub, "baseline": name, "reference": ref, **compare(mats[sub], r["model"], ref)})
    return pd.DataFrame(rows)


def seed_level(students: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, teacher, subset, baseline): the per-seed deltas summarised over seeds."""
    rows = []
    if students.empty:
        return pd.DataFrame()
    for (arm, teacher, sub, base), g in students.groupby(["arm", "teacher", "subset", "baseline"]):
        g = g.sort_values("seed")
        sb, sm = seed_summary(g["delta_bias"].to_numpy()), seed_summary(g["delta_margin"].to_numpy())
        rows.append({"arm": arm, "teacher": teacher, "subset": sub, "baseline": base, "seeds": ",".join(map(str, g["seed"])),
                     **{f"bias_{k}": v for k, v in sb.items()}, **{f"margin_{k}": v for k, v in sm.items()}})
    return pd.DataFrame(rows)


def c1_table(mats: Mats, runs: list[Run], bases: dict[str, str]) -> pd.DataFrame:
    """C1: each distilled student against its teacher (bias, paired over items), and its shift
    (vs baseline 2) beside the teacher's shift (vs its base, `bases`: teacher -> base)."""
    beta0 = baseline2(runs)
    rows = []
    for r in runs:
        if r["teacher"] is None:
            continue
        base = bases[r["teacher"]]
        for sub in SUBSETS:
            m = mats.get(sub)
            b2 = b2_of(beta0, r)
            if m is None or b2 is None or any(x not in m["choice"] for x in (r["model"], r["teacher"], base, b2)):
                continue
            c = compare(m, r["model"], r["teacher"])
            rows.append({"student": r["model"], "arm": r["arm"], "teacher": r["teacher"], "seed": r["seed"], "subset": sub,
                         "bias_student": c["bias_a"], "bias_teacher": c["bias_b"], "student_minus_teacher": c["delta_bias"],
                         "lo": c["delta_bias_lo"], "hi": c["delta_bias_hi"], "p": c["p_bias"],
                         "student_shift": compare(m, r["model"], b2)["delta_bias"],
                         "teacher_shift": compare(m, r["teacher"], base)["delta_bias"]})
    return pd.DataFrame(rows)


def retention(mats: Mats, runs: list[Run], teacher: str, base: str) -> pd.DataFrame:
    """Debiasing retention of every student of `teacher` (trained from `base`; module docstring), per
    subset, in bias points (choices) and in margins."""
    beta0 = baseline2(runs)
    rows = []
    for r in runs:
        if r["teacher"] != teacher:
            continue
        b2 = b2_of(beta0, r)
        for sub in SUBSETS:
            m = mats.get(sub)
            if m is None or any(x not in m["choice"] for x in (r["model"], teacher, base)) or b2 not in m["choice"]:
                continue
            row: dict[str, Any] = {"student": r["model"], "arm": r["arm"], "seed": r["seed"], "subset": sub}
            for tag, v, scale in (("", "choice", 100.0), ("_margin", "margin", 1.0)):  # bias points; nats
                t_drop = (m[v][base] - m[v][teacher]).to_numpy(float)
                s_drop = (m[v][b2] - m[v][r["model"]]).to_numpy(float)
                td = bootstrap_ci(scale * t_drop, n_boot=N_BOOT)
                with np.errstate(divide="ignore", invalid="ignore"):  # resamples whose teacher drop is exactly 0
                    ratio = ratio_of_means_ci(s_drop, t_drop, n_boot=N_BOOT) if t_drop.mean() != 0 else None
                nan = float("nan")
                row |= {f"teacher{tag}_drop": td.estimate, f"teacher{tag}_drop_lo": td.lo, f"teacher{tag}_drop_hi": td.hi,
                        f"student{tag}_drop": scale * s_drop.mean(), f"retention{tag}": ratio.estimate if ratio else nan,
                        f"retention{tag}_lo": ratio.lo if ratio else nan, f"retention{tag}_hi": ratio.hi if ratio else nan,
                        f"defined{tag}": bool(td.lo > 0)}  # a teacher drop whose CI holds 0 leaves the ratio meaningless
            rows.append(row)
    return pd.DataFrame(rows)


def retention_seed_level(ret: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, subset): the per-seed retentions (bias and margin) summarised over seeds."""
    rows = []
    for (arm, sub), g in ret.groupby(["arm", "subset"]) if not ret.empty else ():
        g = g.sort_values("seed")
        row: dict[str, Any] = {"arm": arm, "subset": sub, "seeds": ",".join(map(str, g["seed"]))}
        for col in ("retention", "retention_margin"):
            row |= {f"{col}_{k}": v for k, v in seed_summary(g[col].to_numpy()).items()}
        row |= {"defined": bool(g["defined"].all()), "defined_margin": bool(g["defined_margin"].all())}
        rows.append(row)
    return pd.DataFrame(rows)


def teacher_contrast(mats: Mats, runs: list[Run], biased: str, debiased: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per seed, over seeds): the student of `biased` against the student of `debiased`, same arm, seed,
    rows and training (module docstring); delta > 0 = the stereotyped teacher's student is the more
    stereotyped."""
    by = {(r["arm"], r["seed"], r["examples"], r["training"], r["teacher"]): r["model"] for r in runs}
    rows = []
    for (arm, seed, n, training, t), a in sorted(by.items(), key=lambda kv: tuple(map(str, kv[0]))):
        b = by.get((arm, seed, n, training, debiased))
        if t != biased or b is None:
            continue
        for sub in SUBSETS:
            if sub in mats and a in mats[sub]["choice"] and b in mats[sub]["choice"]:
                rows.append({"arm": arm, "seed": seed, "subset": sub, "student": a, "reference": b,
                             **compare(mats[sub], a, b)})
    per_seed = pd.DataFrame(rows)
    summary = []
    for (arm, sub), g in per_seed.groupby(["arm", "subset"]) if not per_seed.empty else ():
        g = g.sort_values("seed")
        sb, sm = seed_summary(g["delta_bias"].to_numpy()), seed_summary(g["delta_margin"].to_numpy())
        summary.append({"arm": arm, "subset": sub, "biased": biased, "debiased": debiased,
                        "seeds": ",".join(map(str, g["seed"])), **{f"bias_{k}": v for k, v in sb.items()},
                        **{f"margin_{k}": v for k, v in sm.items()}})
    return per_seed, pd.DataFrame(summary)


def agreement(mats: Mats, runs: list[Run]) -> pd.DataFrame:
    """Share of items where teacher and student choose the same sentence, overall and on the items the
    teacher gets 'right' (choice 0: the less stereotyping sentence), against baseline 2's share."""
    beta0 = baseline2(runs)
    rows = []
    for r in runs:
        if r["teacher"] is None:
            continue
        b2 = b2_of(beta0, r)
        for sub in SUBSETS:
            m = mats.get(sub)
            if m is None or any(x not in m["choice"] for x in (r["model"], r["teacher"])) or b2 not in m["choice"]:
                continue
            ch = m["choice"]
            t = ch[r["teacher"]].to_numpy()
            for scope, keep in (("all", np.ones_like(t, bool)), ("teacher right", t == 0)):
                if keep.sum() == 0:
                    continue
                a_s = (ch[r["model"]].to_numpy() == t)[keep].astype(float)
                a_b = (ch[b2].to_numpy() == t)[keep].astype(float)
                pt = paired_test(100 * a_s, 100 * a_b, n_perm=N_BOOT)
                rows.append({"student": r["model"], "arm": r["arm"], "teacher": r["teacher"], "seed": r["seed"],
                             "subset": sub, "scope": scope, "n": int(keep.sum()), "agree_student": 100 * a_s.mean(),
                             "agree_beta0": 100 * a_b.mean(), "difference": pt.mean_diff.estimate,
                             "lo": pt.mean_diff.lo, "hi": pt.mean_diff.hi, "p": pt.p_value})
    return pd.DataFrame(rows)


def confidence(mats: Mats, runs: list[Run]) -> pd.DataFrame:
    """Mean |margin| of every model per subset; for distilled students also the paired change
    against baseline 2."""
    beta0 = baseline2(runs)
    by_model = {r["model"]: r for r in runs}
    rows = []
    for sub, m in mats.items():
        for model in m["margin"].columns:
            absm = m["margin"][model].abs().to_numpy(float)
            row: dict[str, Any] = {"model": model, "subset": sub, "mean_abs_margin": absm.mean()}
            r = by_model.get(model)
            b2 = b2_of(beta0, r) if r else None
            if b2 is not None and b2 != model and b2 in m["margin"]:
                pt = paired_test(absm, m["margin"][b2].abs().to_numpy(float), n_perm=N_BOOT)
                row |= {"vs_beta0": pt.mean_diff.estimate, "lo": pt.mean_diff.lo, "hi": pt.mean_diff.hi, "p": pt.p_value}
            rows.append(row)
    return pd.DataFrame(rows)


# ---- files -------------------------------------------------------------------------------------------


def perplexities(raw: Path) -> pd.DataFrame:
    rows = []
    for p in sorted((raw / "evals").glob("*/perplexity.json")):
        f = json.loads(p.read_text())["figures"]
        rows.append({"model": p.parent.name, "perplexity": f["perplexity"], "nll": f["nll"], "tokens": f["n_tokens"]})
    return pd.DataFrame(rows)


def label_prefix(models: pd.DataFrame) -> str:
    """What the names of every trained model share up to its last '-' (e.g. 'sb-'): dropped from labels."""
    names = [str(n) for n in models[models.role != "untouched"].index]
    common = os.path.commonprefix(names) if names else ""
    return common[:common.rfind("-") + 1]


def bias_shift_png(teachers: pd.DataFrame, students: pd.DataFrame, prefix: str = "") -> bytes:
    """Delta bias with 95% CIs: teachers vs base, students vs baseline 2 (labelled without `prefix`), one panel
    per subset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SUBSETS), figsize=(5 * len(SUBSETS), 4.5), sharey=False)
    for ax, sub in zip(np.atleast_1d(axes), SUBSETS):
        t = teachers[teachers.subset == sub] if not teachers.empty else teachers
        s = students[(students.subset == sub) & (students.baseline == "beta0")] if not students.empty else students
        labels = list(t.teacher) + list(s.student.str.removeprefix(prefix)) if len(s) else list(t.teacher)
        est = list(t.delta_bias) + (list(s.delta_bias) if len(s) else [])
        lo = list(t.delta_bias_lo) + (list(s.delta_bias_lo) if len(s) else [])
        hi = list(t.delta_bias_hi) + (list(s.delta_bias_hi) if len(s) else [])
        y = np.arange(len(labels))
        ax.errorbar(est, y, xerr=[np.subtract(est, lo), np.subtract(hi, est)], fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{sub}: delta bias (points)")
    return figure_png(fig, dpi=110)


def _f(x: Any, nd: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:+.{nd}f}"


def _p(x: Any) -> str:
    return "-" if x is None or not np.isfinite(x) else ("< 1e-4" if x < 1e-4 else f"{x:.3g}")


def _delta_cells(r: dict[str, Any]) -> str:
    """'delta bias [95% CI] | p | delta margin [95% CI] | p' cells of a `compare` row."""
    return (f"{_f(r['delta_bias'])} [{_f(r['delta_bias_lo'])}, {_f(r['delta_bias_hi'])}] | {_p(r['p_bias'])} | "
            f"{_f(r['delta_margin'], 3)} [{_f(r['delta_margin_lo'], 3)}, {_f(r['delta_margin_hi'], 3)}] | {_p(r['p_margin'])}")


def _seed_cells(r: dict[str, Any], prefix: str, nd: int) -> str:
    """'mean [t-CI] | seed p | MDE' cells of a seed_summary row whose keys start with prefix."""
    lo, hi = r.get(f"{prefix}_lo", np.nan), r.get(f"{prefix}_hi", np.nan)
    ci = f"[{_f(lo, nd)}, {_f(hi, nd)}]" if np.isfinite(lo) else "(one seed)" if r.get(f"{prefix}_n_seeds", 2) < 2 else "(no spread)"
    return (f"{_f(r[f'{prefix}_mean'], nd)} {ci} | {_p(r.get(f'{prefix}_p', np.nan))} | "
            f"{_f(r.get(f'{prefix}_mde_80', np.nan), nd)}")


def markdown(teachers: pd.DataFrame, students: pd.DataFrame, seeds: pd.DataFrame, c1: pd.DataFrame,
             ret: pd.DataFrame, agree: pd.DataFrame, conf: pd.DataFrame, ppl: pd.DataFrame,
             ret_seeds: pd.DataFrame | None = None, contrast: pd.DataFrame | None = None,
             contrast_seeds: pd.DataFrame | None = None, base: str = "base") -> str:
    out = [f"## {TEACHER_SECTION}{base} (paired over items)", "",
           "| teacher | subset | items | bias base | bias teacher | delta bias [95% CI] | p | delta margin [95% CI] | p |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in teachers.to_dict("records"):
        out.append(f"| {r['teacher']} | {r['subset']} | {r['n']} | {r['bias_b']:.1f} | {r['bias_a']:.1f} | "
                   f"{_delta_cells(r)} |")
    if not seeds.empty:
        out += ["", "## Students: bias change against baseline 1 (untouched) and 2 (beta = 0), seed level", "",
                "| arm | teacher | subset | baseline | seeds | delta bias: mean [95% t-CI] | seed p | MDE 80% | delta margin: mean [95% t-CI] | seed p | MDE 80% |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in seeds.to_dict("records"):
            out.append(f"| {r['arm']} | {r['teacher']} | {r['subset']} | {r['baseline']} | {r['seeds']} | "
                       f"{_seed_cells(r, 'bias', 2)} | {_seed_cells(r, 'margin', 3)} |")
        out += ["", "## Students per seed (item-level CIs)", "",
                "| student | subset | baseline | bias student | bias baseline | delta bias [95% CI] | p | delta margin [95% CI] | p |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in students.to_dict("records"):
            out.append(f"| {r['student']} | {r['subset']} | {r['baseline']} | {r['bias_a']:.1f} | {r['bias_b']:.1f} | "
                       f"{_delta_cells(r)} |")
    if not c1.empty:
        out += ["", "## C1: student vs teacher", "", "| student | subset | bias student | bias teacher | student - teacher [95% CI] | p | student shift (vs beta0) | teacher shift (vs base) |",
                "|---|---|---|---|---|---|---|---|"]
        for r in c1.to_dict("records"):
            out.append(f"| {r['student']} | {r['subset']} | {r['bias_student']:.1f} | {r['bias_teacher']:.1f} | {_f(r['student_minus_teacher'])} "
                       f"[{_f(r['lo'])}, {_f(r['hi'])}] | {_p(r['p'])} | {_f(r['student_shift'])} | {_f(r['teacher_shift'])} |")
    if contrast_seeds is not None and not contrast_seeds.empty:
        out += ["", "## Teacher contrast: student of the stereotyped teacher minus student of the debiased teacher (same arm, seed, rows)", "",
                "| arm | subset | biased - debiased teacher | seeds | delta bias: mean [95% t-CI] | seed p | MDE 80% | delta margin: mean [95% t-CI] | seed p | MDE 80% |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in contrast_seeds.to_dict("records"):
            out.append(f"| {r['arm']} | {r['subset']} | {r['biased']} - {r['debiased']} | {r['seeds']} | "
                       f"{_seed_cells(r, 'bias', 2)} | {_seed_cells(r, 'margin', 3)} |")
    if contrast is not None and not contrast.empty:
        out += ["", "### Teacher contrast per seed (item-level CIs)", "",
                "| student | reference | subset | delta bias [95% CI] | p | delta margin [95% CI] | p |", "|---|---|---|---|---|---|---|"]
        for r in contrast.to_dict("records"):
            out.append(f"| {r['student']} | {r['reference']} | {r['subset']} | {_delta_cells(r)} |")
    if not ret.empty:
        out += ["", "## Debiasing retention (student drop / teacher drop; bias points and margins)", "",
                "| student | subset | teacher drop [95% CI] | student drop | retention [95% CI] | teacher margin drop [95% CI] | student margin drop | retention of the margin [95% CI] |",
                "|---|---|---|---|---|---|---|---|"]
        for r in ret.to_dict("records"):
            und = lambda ok: "" if ok else " (undefined: teacher drop CI holds 0)"
            out.append(f"| {r['student']} | {r['subset']} | {_f(r['teacher_drop'])} [{_f(r['teacher_drop_lo'])}, {_f(r['teacher_drop_hi'])}] | "
                       f"{_f(r['student_drop'])} | {_f(r['retention'])} [{_f(r['retention_lo'])}, {_f(r['retention_hi'])}]{und(r['defined'])} | "
                       f"{_f(r['teacher_margin_drop'], 3)} [{_f(r['teacher_margin_drop_lo'], 3)}, {_f(r['teacher_margin_drop_hi'], 3)}] | "
                       f"{_f(r['student_margin_drop'], 3)} | {_f(r['retention_margin'])} [{_f(r['retention_margin_lo'])}, "
                       f"{_f(r['retention_margin_hi'])}]{und(r['defined_margin'])} |")
    if ret_seeds is not None and not ret_seeds.empty:
        out += ["", "### Retention over seeds", "",
                "| arm | subset | seeds | retention: mean [95% t-CI] | seed p | MDE 80% | retention of the margin: mean [95% t-CI] | seed p | MDE 80% |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in ret_seeds.to_dict("records"):
            b = _seed_cells(r, "retention", 2) if r["defined"] else "undefined (teacher drop CI holds 0) | - | -"
            mg = _seed_cells(r, "retention_margin", 2) if r["defined_margin"] else "undefined (teacher drop CI holds 0) | - | -"
            out.append(f"| {r['arm']} | {r['subset']} | {r['seeds']} | {b} | {mg} |")
    if not agree.empty:
        out += ["", "## Agreement with the teacher (% of items), against baseline 2", "", "| student | subset | scope | items | student | beta0 | difference [95% CI] | p |",
                "|---|---|---|---|---|---|---|---|"]
        for r in agree.to_dict("records"):
            out.append(f"| {r['student']} | {r['subset']} | {r['scope']} | {r['n']} | {r['agree_student']:.1f} | {r['agree_beta0']:.1f} | "
                       f"{_f(r['difference'])} [{_f(r['lo'])}, {_f(r['hi'])}] | {_p(r['p'])} |")
    if not conf.empty:
        out += ["", "## Confidence: mean |margin|", "", "| model | subset | mean abs margin | vs beta0 [95% CI] | p |", "|---|---|---|---|---|"]
        for r in conf.to_dict("records"):
            d = f"{_f(r.get('vs_beta0'), 3)} [{_f(r.get('lo'), 3)}, {_f(r.get('hi'), 3)}]" if np.isfinite(r.get("vs_beta0", np.nan)) else "-"
            out.append(f"| {r['model']} | {r['subset']} | {r['mean_abs_margin']:.3f} | {d} | {_p(r.get('p', np.nan))} |")
    if not ppl.empty:
        out += ["", "## Perplexity on the shipped held-out text (compare within one tokenizer)", "", "| model | perplexity | tokens |", "|---|---|---|"]
        out += [f"| {r['model']} | {r['perplexity']:.2f} | {r['tokens']} |" for r in ppl.to_dict("records")]
    return "\n".join(out) + "\n"


def tables_sections(tables_md: str) -> dict[str, str]:
    """The '## ' sections of tables.md: title -> body (stripped)."""
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"^## ([^\n]+)\n\n(.*?)(?=\n## |\Z)", tables_md, re.S | re.M)}


def fill_readme(template: str, tables_md: str, timings: dict[str, float]) -> str:
    """The README from its template: {{TEACHER_TABLE}} = the teachers section of tables.md, {{STUDENT_TABLES}} =
    every other section (demoted one level), {{TIMINGS}} = a table of timings.json. Fails on a placeholder
    left unfilled or a missing teachers section, so a stale README is never written silently."""
    sec = tables_sections(tables_md)
    title = next((k for k in sec if k.startswith(TEACHER_SECTION)), None)
    if title is None:
        raise ValueError(f"tables.md has no section {TEACHER_SECTION!r}...")
    teacher = sec.pop(title)
    students = "\n\n".join(f"### {k}\n\n" + v.replace("\n### ", "\n#### ") for k, v in sec.items())
    rows = "\n".join(f"| {u} | {t:.0f} |" for u, t in sorted(timings.items()))
    s = (template.replace("{{TEACHER_TABLE}}", teacher).replace("{{STUDENT_TABLES}}", students)
         .replace("{{TIMINGS}}", "| unit | s |\n|---|---|\n" + rows))
    left = re.findall(r"\{\{[A-Z_]+\}\}", s)
    if left:
        raise ValueError(f"README template placeholders not filled: {left}")
    return s



def report(raw: Path, out: Path) -> None:
    """The report tables of raw/per_pair.csv (and raw/evals/*/perplexity.json, raw/README.in.md,
    raw/timings.json) written to out: teachers.csv, students.csv, per_seed_summary.csv, c1.csv,
    retention.csv, retention_seed_level.csv, teacher_contrast.csv, teacher_contrast_seed_level.csv,
    agreement.csv, confidence.csv, perplexity.csv, tables.md, bias_shift.png and README.md."""
    pp = pd.read_csv(raw / "per_pair.csv", low_memory=False)
    models = models_of(pp)
    mats, runs, bases = matrices(pp), student_runs(models), teacher_bases(models)
    teachers = teacher_table(mats, {t: b for t, b in bases.items() if any(t in m["choice"] for m in mats.values())})
    students = student_table(mats, runs)
    seeds = seed_level(students)
    c1, agree, conf, ppl = c1_table(mats, runs, bases), agreement(mats, runs), confidence(mats, runs), perplexities(raw)
    debiased = [t for t in bases if str(models.loc[t, "teacher_data"]).startswith("balanced")]
    ret = pd.concat([retention(mats, runs, t, bases[t]) for t in debiased] or [pd.DataFrame()])
    ret_seeds = retention_seed_level(ret)
    pairs = [p for p in (teacher_contrast(mats, runs, *pair) for pair in contrast_pairs(models)) if not p[0].empty]
    contrast, contrast_seeds = ((pd.concat([p[0] for p in pairs], ignore_index=True),
                                 pd.concat([p[1] for p in pairs], ignore_index=True)) if pairs
                                else (pd.DataFrame(), pd.DataFrame()))
    out.mkdir(parents=True, exist_ok=True)
    for name, df in {"teachers": teachers, "students": students, "per_seed_summary": seeds, "c1": c1, "retention": ret,
                     "retention_seed_level": ret_seeds, "teacher_contrast": contrast,
                     "teacher_contrast_seed_level": contrast_seeds, "agreement": agree, "confidence": conf,
                     "perplexity": ppl}.items():
        df.to_csv(out / f"{name}.csv", index=False)
    base = ", ".join(dict.fromkeys(bases.values())) or "base"
    tables = markdown(teachers, students, seeds, c1, ret, agree, conf, ppl, ret_seeds, contrast, contrast_seeds, base)
    (out / "tables.md").write_text(tables)
    if not teachers.empty:
        (out / "bias_shift.png").write_bytes(bias_shift_png(teachers, students, label_prefix(models)))
    if (raw / "README.in.md").exists():
        timings = json.loads((raw / "timings.json").read_text()) if (raw / "timings.json").exists() else {}
        (out / "README.md").write_text(fill_readme((raw / "README.in.md").read_text(), tables, timings))
