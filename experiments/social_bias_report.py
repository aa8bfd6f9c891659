"""Statistics and report of the social-bias study (experiments/social_bias.py; issue 17).

Inputs: reports/social_bias/evals/<model>/ (the crows / stereoset / perplexity tables) and runs/.
Output: per_pair.csv (one row per model and item), teachers.csv, students.csv, per_seed.csv,
retention.csv, agreement.csv, confidence.csv, perplexity.csv, tables.md, bias_shift.png, README
tables. README.md is README.in.md (the prose, written by hand) with its placeholders filled from tables.md
and timings.json (`fill_readme`).

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
Students (arm shd / kd, teacher T, seed s) against
    baseline 1 = the untouched student (gemma3-270m for shd, smollm2 for kd), and
    baseline 2 = the same student trained on the same rows with beta = 0 (beta0-gemma / beta0-smollm2, seed s).
Seed level: the per-seed delta bias (and delta margin) -> mean, t-interval, one-sample t-test and the
MDE at 80% power (`evals.stats.seed_summary`).
Seed 003's comparisons:
    C1  teacher vs student: bias(student) - bias(teacher), per item; and the student's shift (vs baseline 2)
        against the teacher's shift (vs base smollm2).
    C2  KD vs non-KD: the kd student against beta0-smollm2 (baseline 2 of the kd arm).
    retention = mean_i (choice_b2,i - choice_S,i) / mean_i (choice_base,i - choice_T,i): the student's bias
        drop over the debiased teacher's, paired ratio-of-means bootstrap CI (`evals.stats.ratio_of_means_ci`);
        undefined (reported, not used) when the teacher's drop CI includes 0. The same ratio on margins,
        mean_i (margin_b2,i - margin_S,i) / mean_i (margin_base,i - margin_T,i), is defined where a teacher moved
        the margins without flipping enough choices; both are summarised over seeds.
    teacher contrast = the student of the stereotyped teacher minus the student of the debiased teacher of the
        same arm and seed (same rows, same order, same initialisation: only the teacher differs), paired over
        items, then over seeds: the best-controlled test of whether the teacher's bias reaches the student.
    agreement = share of items where teacher and student choose the same sentence, overall and on the items
        where the debiased teacher chooses the less stereotyping one (it is "right"); against the
        agreement of baseline 2 with the same teacher (paired over items), since any two models agree
        on many items.
    confidence = mean_i |margin_i|; distillation's change = paired difference against baseline 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.evals.stats import bootstrap_ci, paired_test, ratio_of_means_ci, seed_summary
from interp.plots import figure_png

SUBSETS = ("probe-occupation", "crows-gender", "ss-gender", "ss-profession")
PER_PAIR_COLUMNS = ["model", "bench", "item", "bias_type", "ll_more", "ll_less", "n_tokens_more", "n_tokens_less",
                    "ll_unrelated", "n_tokens_unrelated"]
N_BOOT = 10_000
TEACHER_SECTION = "Teachers: bias against base smollm2 (paired over items)"


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


def matrices(pp: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """subset -> {'choice': (item x model), 'margin': (item x model)}; items in a fixed order."""
    s = item_scores(pp)
    out = {}
    for sub, g in s.groupby("subset"):
        out[str(sub)] = {v: g.pivot(index="key", columns="model", values=v).sort_index() for v in ("choice", "margin")}
    return out


# ---- comparisons ----------------------------------------------------------------------------------------


def compare(m: dict[str, pd.DataFrame], a: str, b: str, seed: int = 0) -> dict[str, float]:
    """Model a against model b on one subset's items: bias of each, delta bias and delta margin with
    CIs and paired p-values."""
    ca, cb = m["choice"][a].to_numpy(float), m["choice"][b].to_numpy(float)
    ma, mb = m["margin"][a].to_numpy(float), m["margin"][b].to_numpy(float)
    rb = paired_test(100 * ca, 100 * cb, n_perm=N_BOOT, seed=seed)
    rm = paired_test(ma, mb, n_perm=N_BOOT, seed=seed)
    return {"n": len(ca), "bias_a": 100 * ca.mean(), "bias_b": 100 * cb.mean(),
            "delta_bias": rb.mean_diff.estimate, "delta_bias_lo": rb.mean_diff.lo, "delta_bias_hi": rb.mean_diff.hi,
            "p_bias": rb.p_value, "delta_margin": rm.mean_diff.estimate, "delta_margin_lo": rm.mean_diff.lo,
            "delta_margin_hi": rm.mean_diff.hi, "p_margin": rm.p_value}


def teacher_table(mats: dict[str, dict[str, pd.DataFrame]], teachers: list[str], base: str = "smollm2") -> pd.DataFrame:
    rows = []
    for t in teachers:
        for sub in SUBSETS:
            if sub in mats and t in mats[sub]["choice"] and base in mats[sub]["choice"]:
                rows.append({"teacher": t, "subset": sub, **compare(mats[sub], t, base)})
    return pd.DataFrame(rows)


def student_table(mats: dict[str, dict[str, pd.DataFrame]], runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (distilled student, subset, baseline): the comparison against baseline 1 and 2."""
    beta0 = {(r["student"], r["seed"], r["examples"]): r["alias"] for r in runs if r.get("arm", "").startswith("beta0")}
    rows = []
    for r in runs:
        if r.get("role") != "student" or r["arm"].startswith("beta0"):
            continue
        baselines = {"untouched": r["student"], "beta0": beta0.get((r["student"], r["seed"], r["examples"]))}
        for sub in SUBSETS:
            if sub not in mats or r["alias"] not in mats[sub]["choice"]:
                continue
            for name, ref in baselines.items():
                if ref is None or ref not in mats[sub]["choice"]:
                    continue
                rows.append({"student": r["alias"], "arm": r["arm"], "teacher": r["teacher"], "seed": r["seed"],
                             "subset": sub, "baseline": name, "reference": ref, **compare(mats[sub], r["alias"], ref)})
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


def c1_table(mats: dict[str, dict[str, pd.DataFrame]], runs: list[dict[str, Any]], base: str = "smollm2") -> pd.DataFrame:
    """C1: each distilled student against its teacher (bias, paired over items), and its shift
    (vs baseline 2) beside the teacher's shift (vs base)."""
    beta0 = {(r["student"], r["seed"], r["examples"]): r["alias"] for r in runs if r.get("arm", "").startswith("beta0")}
    rows = []
    for r in runs:
        if r.get("role") != "student" or r["arm"].startswith("beta0"):
            continue
        for sub in SUBSETS:
            m = mats.get(sub)
            b2 = beta0.get((r["student"], r["seed"], r["examples"]))
            if m is None or any(x not in m["choice"] for x in (r["alias"], r["teacher"], base)) or b2 not in m["choice"]:
                continue
            c = compare(m, r["alias"], r["teacher"])
            rows.append({"student": r["alias"], "arm": r["arm"], "teacher": r["teacher"], "seed": r["seed"], "subset": sub,
                         "bias_student": c["bias_a"], "bias_teacher": c["bias_b"], "student_minus_teacher": c["delta_bias"],
                         "lo": c["delta_bias_lo"], "hi": c["delta_bias_hi"], "p": c["p_bias"],
                         "student_shift": compare(m, r["alias"], b2)["delta_bias"],
                         "teacher_shift": compare(m, r["teacher"], base)["delta_bias"]})
    return pd.DataFrame(rows)


def retention(mats: dict[str, dict[str, pd.DataFrame]], runs: list[dict[str, Any]], teacher: str,
              base: str = "smollm2") -> pd.DataFrame:
    """Debiasing retention of every student of `teacher` (module docstring), per subset, in bias points
    (choices) and in margins."""
    beta0 = {(r["student"], r["seed"], r["examples"]): r["alias"] for r in runs if r.get("arm", "").startswith("beta0")}
    rows = []
    for r in runs:
        if r.get("teacher") != teacher or r.get("role") != "student":
            continue
        b2 = beta0.get((r["student"], r["seed"], r["examples"]))
        for sub in SUBSETS:
            m = mats.get(sub)
            if m is None or any(x not in m["choice"] for x in (r["alias"], teacher, base)) or b2 not in m["choice"]:
                continue
            row: dict[str, Any] = {"student": r["alias"], "arm": r["arm"], "seed": r["seed"], "subset": sub}
            for tag, v, scale in (("", "choice", 100.0), ("_margin", "margin", 1.0)):  # bias points; nats
                t_drop = (m[v][base] - m[v][teacher]).to_numpy(float)
                s_drop = (m[v][b2] - m[v][r["alias"]]).to_numpy(float)
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


def teacher_contrast(mats: dict[str, dict[str, pd.DataFrame]], runs: list[dict[str, Any]], biased: str,
                     debiased: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per seed, over seeds): the student of `biased` against the student of `debiased`, same arm, seed
    and rows (module docstring); delta > 0 = the stereotyped teacher's student is the more stereotyped."""
    by = {(r["arm"], r["seed"], r["examples"], r["teacher"]): r["alias"] for r in runs if r.get("role") == "student"}
    rows = []
    for (arm, seed, n, t), a in sorted(by.items(), key=lambda kv: tuple(map(str, kv[0]))):
        b = by.get((arm, seed, n, debiased))
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


def agreement(mats: dict[str, dict[str, pd.DataFrame]], runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Share of items where teacher and student choose the same sentence, overall and on the items the
    teacher gets 'right' (choice 0: the less stereotyping sentence), against baseline 2's share."""
    beta0 = {(r["student"], r["seed"], r["examples"]): r["alias"] for r in runs if r.get("arm", "").startswith("beta0")}
    rows = []
    for r in runs:
        if r.get("role") != "student" or r["arm"].startswith("beta0"):
            continue
        b2 = beta0.get((r["student"], r["seed"], r["examples"]))
        for sub in SUBSETS:
            m = mats.get(sub)
            if m is None or any(x not in m["choice"] for x in (r["alias"], r["teacher"])) or b2 not in m["choice"]:
                continue
            ch = m["choice"]
            t = ch[r["teacher"]].to_numpy()
            for scope, keep in (("all", np.ones_like(t, bool)), ("teacher right", t == 0)):
                if keep.sum() == 0:
                    continue
                a_s = (ch[r["alias"]].to_numpy() == t)[keep].astype(float)
                a_b = (ch[b2].to_numpy() == t)[keep].astype(float)
                pt = paired_test(100 * a_s, 100 * a_b, n_perm=N_BOOT)
                rows.append({"student": r["alias"], "arm": r["arm"], "teacher": r["teacher"], "seed": r["seed"],
                             "subset": sub, "scope": scope, "n": int(keep.sum()), "agree_student": 100 * a_s.mean(),
                             "agree_beta0": 100 * a_b.mean(), "difference": pt.mean_diff.estimate,
                             "lo": pt.mean_diff.lo, "hi": pt.mean_diff.hi, "p": pt.p_value})
    return pd.DataFrame(rows)


def confidence(mats: dict[str, dict[str, pd.DataFrame]], runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Mean |margin| of every model per subset; for distilled students also the paired change
    against baseline 2."""
    beta0 = {(r["student"], r["seed"], r["examples"]): r["alias"] for r in runs if r.get("arm", "").startswith("beta0")}
    by_alias = {r["alias"]: r for r in runs}
    rows = []
    for sub, m in mats.items():
        for model in m["margin"].columns:
            absm = m["margin"][model].abs().to_numpy(float)
            row: dict[str, Any] = {"model": model, "subset": sub, "mean_abs_margin": absm.mean()}
            r = by_alias.get(model)
            b2 = beta0.get((r["student"], r["seed"], r["examples"])) if r and r.get("role") == "student" else None
            if b2 is not None and b2 != model and b2 in m["margin"]:
                pt = paired_test(absm, m["margin"][b2].abs().to_numpy(float), n_perm=N_BOOT)
                row |= {"vs_beta0": pt.mean_diff.estimate, "lo": pt.mean_diff.lo, "hi": pt.mean_diff.hi, "p": pt.p_value}
            rows.append(row)
    return pd.DataFrame(rows)


# ---- files -------------------------------------------------------------------------------------------


def load_runs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("sb-*.json"))] if (out / "runs").exists() else []


def perplexities(out: Path) -> pd.DataFrame:
    rows = []
    for p in sorted((out / "evals").glob("*/perplexity.json")):
        f = json.loads(p.read_text())["figures"]
        rows.append({"model": p.parent.name, "perplexity": f["perplexity"], "nll": f["nll"], "tokens": f["n_tokens"]})
    return pd.DataFrame(rows)


def bias_shift_png(teachers: pd.DataFrame, students: pd.DataFrame) -> bytes:
    """Delta bias with 95% CIs: teachers vs base, students vs baseline 2, one panel per subset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SUBSETS), figsize=(5 * len(SUBSETS), 4.5), sharey=False)
    for ax, sub in zip(np.atleast_1d(axes), SUBSETS):
        t = teachers[teachers.subset == sub] if not teachers.empty else teachers
        s = students[(students.subset == sub) & (students.baseline == "beta0")] if not students.empty else students
        labels = list(t.teacher) + list(s.student.str.removeprefix("sb-")) if len(s) else list(t.teacher)
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
             contrast_seeds: pd.DataFrame | None = None) -> str:
    out = [f"## {TEACHER_SECTION}", "",
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
            und = lambda ok: "" if ok else " (undefined: teacher drop CI holds 0)"  # noqa: E731
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
    teacher = sec.pop(TEACHER_SECTION, None)
    if teacher is None:
        raise ValueError(f"tables.md has no section {TEACHER_SECTION!r}")
    students = "\n\n".join(f"### {k}\n\n" + v.replace("\n### ", "\n#### ") for k, v in sec.items())
    rows = "\n".join(f"| {u} | {t:.0f} |" for u, t in sorted(timings.items()))
    s = (template.replace("{{TEACHER_TABLE}}", teacher).replace("{{STUDENT_TABLES}}", students)
         .replace("{{TIMINGS}}", "| unit | s |\n|---|---|\n" + rows))
    left = re.findall(r"\{\{[A-Z_]+\}\}", s)
    if left:
        raise ValueError(f"README template placeholders not filled: {left}")
    return s


def write_report(out: Path) -> None:
    from social_bias import DEBIASED, MEDIUM, TEACHERS, eval_models  # the model list of the experiment

    pp = pd.concat([per_pair_rows(m, out / "evals" / m) for m in eval_models() if (out / "evals" / m).exists()],
                   ignore_index=True)
    pp.to_csv(out / "per_pair.csv", index=False)
    mats, runs = matrices(pp), load_runs(out)
    teachers = teacher_table(mats, [t for t in TEACHERS if any(t in m["choice"] for m in mats.values())])
    students = student_table(mats, runs)
    seeds = seed_level(students)
    c1, agree, conf, ppl = c1_table(mats, runs), agreement(mats, runs), confidence(mats, runs), perplexities(out)
    ret = pd.concat([retention(mats, runs, t) for t in TEACHERS if TEACHERS[t][0].startswith("balanced")] or [pd.DataFrame()])
    ret_seeds = retention_seed_level(ret)
    contrast, contrast_seeds = teacher_contrast(mats, runs, MEDIUM, DEBIASED)
    for name, df in {"teachers": teachers, "students": students, "per_seed_summary": seeds, "c1": c1, "retention": ret,
                     "retention_seed_level": ret_seeds, "teacher_contrast": contrast,
                     "teacher_contrast_seed_level": contrast_seeds, "agreement": agree, "confidence": conf,
                     "perplexity": ppl}.items():
        df.to_csv(out / f"{name}.csv", index=False)
    (out / "tables.md").write_text(markdown(teachers, students, seeds, c1, ret, agree, conf, ppl, ret_seeds, contrast,
                                            contrast_seeds))
    if not teachers.empty:
        (out / "bias_shift.png").write_bytes(bias_shift_png(teachers, students))
    readme = ""
    if (out / "README.in.md").exists():
        timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
        (out / "README.md").write_text(fill_readme((out / "README.in.md").read_text(), (out / "tables.md").read_text(),
                                                   timings))
        readme = ", README.md"
    print(f"wrote {out}/per_pair.csv ({len(pp)} rows), tables.md{readme} and the tables")
