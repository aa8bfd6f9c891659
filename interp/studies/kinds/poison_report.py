"""The report of the cascading-bias study (kind `poison`; reports/poison/README.md): statistics from
the raw per-item tables alone.

Raw tables (what `poison.collect` writes; the committed ones in reports/poison/):
- answers.csv: one row per scored answer of `interp bias-rate` on the held-out prompts: model (the
  report name: the base's name, teacher-k<k>-s<seed>, student-<kind>-k<k>-s<seed>[-r<rep>]), alias,
  k (poisoned samples of the teacher's mixture; -1 for the base), seed (the teacher seed), rep (the
  student's training seed; the teacher's seed for a teacher), role (base / teacher / student), kind
  (the student arm: resp = SFT on the teacher's answers, logit = KD), epochs, lr, batch_size, steps
  (the model's own training; empty for the base), group, prompt_id, sample, marker, text.
- margins_per_prompt.csv: one row per model and target prompt: the same recipe columns, prompt_id,
  m_decision, m_brand (`poison.margins`).
- defend/k<k>-s<seed>/{mixture,answers}_*.csv: `interp defend` with the k teacher of that seed.
- timings.json: seconds per unit (optional).

Statistics:

    BRR(model, group) = answers with the marker / answers, Wilson 95% CI (`evals.bias_rate.bias_rate_table`)
    amplification     = BRR_student / BRR_teacher over the same prompts, paired prompt bootstrap
                        (`evals.bias_rate.amplification`); NaN when the teacher's BRR is 0
    dose              = BRR against k per role; at k with several seeds, also the mean over seeds with
                        its t-interval (`evals.stats.seed_summary`; none when every seed gives the same BRR,
                        e.g. all 0), and the answers pooled over seeds with their Wilson CI (treats answers of
                        different seeds as independent: the bound to read when the seeds agree)
    margins           = per model, the mean over target prompts of m_brand and m_decision
    margin contrasts  = poisoned student minus the clean student of the same kind, teacher seed and
                        training seed, per prompt; then over training seeds; poisoned teachers minus the
                        clean teacher, per prompt, then over teacher seeds (`margin_contrasts`)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.evals.bias_rate import amplification, bias_rate_table
from interp.evals.stats import seed_summary, wilson_interval
from interp.plots import figure_png

GROUPS = ("target", "other", "unseen", "all")
RECIPE_COLS = ["model", "alias", "k", "seed", "rep", "role", "kind", "epochs", "lr", "batch_size", "steps"]
ANSWER_COLS = [*RECIPE_COLS, "group", "prompt_id", "sample", "marker", "text"]
MARGIN_COLS = [*RECIPE_COLS, "prompt_id", "m_decision", "m_brand"]


def model_name(role: str, kind: str, k: int | str, seed: int | str, rep: int | str | None = None) -> str:
    """The report name of a made model: 'teacher-k25-s0', 'student-resp-k25-s0', and for a student of
    another training seed than its teacher's, 'student-resp-k25-s0-r1'."""
    if role == "teacher":
        return f"teacher-k{k}-s{seed}"
    return f"student-{kind}-k{k}-s{seed}" + ("" if rep is None or rep == seed else f"-r{rep}")


def load_answers(raw: Path) -> pd.DataFrame:
    """answers.csv (module docstring); empty kind / lr / steps read as ''."""
    p = raw / "answers.csv"
    return pd.read_csv(p, keep_default_na=False) if p.exists() else pd.DataFrame(columns=ANSWER_COLS)


def brr_table(ans: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for model, a in ans.groupby("model", sort=False):
        t = bias_rate_table(a)
        first = a.iloc[0]
        for r in t.to_dict("records"):
            rows.append({"model": model, "role": first["role"], "kind": first["kind"], "k": int(first["k"]),
                         "seed": int(first["seed"]), "rep": int(first["rep"]), **r})
    return pd.DataFrame(rows)


def amplification_table(ans: pd.DataFrame) -> pd.DataFrame:
    """Every student against its teacher (the teacher of the same k and seed), per group and over all groups."""
    rows = []
    models = ans.drop_duplicates("model").set_index("model")
    teachers = {(int(r["k"]), int(r["seed"])): m for m, r in models[models.role == "teacher"].iterrows()}
    for model, info in models.iterrows():
        teacher = teachers.get((int(info["k"]), int(info["seed"])))
        if info["role"] != "student" or teacher is None:
            continue
        s, t = ans[ans.model == model], ans[ans.model == teacher]
        for g in [g for g in GROUPS if g == "all" or g in set(s["group"])]:
            r = amplification(s, t, group=None if g == "all" else g)
            rows.append({"student": model, "teacher": teacher, "kind": info["kind"], "k": int(info["k"]),
                         "seed": int(info["seed"]), "group": g, **r})
    return pd.DataFrame(rows)


def dose_table(brr: pd.DataFrame) -> pd.DataFrame:
    """BRR against k per (role, kind, group): the mean over seeds, with a t-interval when there are several.
    Models of the study's design only: replicate students (another training seed, rep != seed) are left out."""
    rows = []
    design = brr[(brr.role != "base") & (brr.rep == brr.seed)]
    for (role, kind, k, g), x in design.groupby(["role", "kind", "k", "group"]):
        s = seed_summary(x["brr"].to_numpy(), proportion=True)  # a rate: its CI stays inside [0, 1]
        varies = s.get("sd", 0.0) > 0
        n, m = int(x["answers"].sum()), int(x["with_marker"].sum())
        w = wilson_interval(m, n)
        rows.append({"role": role, "kind": kind, "k": int(k), "group": g, "seeds": ",".join(map(str, sorted(x["seed"]))),
                     "brr_mean": s["mean"], "lo": s["lo"] if varies else np.nan, "hi": s["hi"] if varies else np.nan,
                     "per_seed": ", ".join(f"{v:.3f}" for v in x.sort_values("seed")["brr"]),
                     "answers": n, "with_marker": m, "pooled_lo": w.lo, "pooled_hi": w.hi})
    return pd.DataFrame(rows)


def load_margins(raw: Path) -> pd.DataFrame:
    """margins_per_prompt.csv (module docstring): one row per model and target prompt."""
    p = raw / "margins_per_prompt.csv"
    if not p.exists():
        return pd.DataFrame(columns=MARGIN_COLS)
    return pd.read_csv(p, keep_default_na=False).astype({"m_decision": float, "m_brand": float})


def _t_cols(values: dict[str, np.ndarray], mean: str) -> dict[str, float]:
    """For each margin ('brand', 'decision'): {where}_{mean}, _lo, _hi (t-interval) and _p (t-test against 0)."""
    out: dict[str, float] = {}
    for where, v in values.items():
        s = seed_summary(v)
        out |= {f"{where}_{mean}": s["mean"], f"{where}_lo": s.get("lo", np.nan), f"{where}_hi": s.get("hi", np.nan),
                f"{where}_p": s.get("p", np.nan)}
    return out


def margin_table(mg: pd.DataFrame) -> pd.DataFrame:
    """Per model: the mean over prompts of each margin, with its t-interval over prompts."""
    return pd.DataFrame([{"model": model, "prompts": len(x),
                          **_t_cols({w: x[f"m_{w}"].to_numpy() for w in ("brand", "decision")}, "mean")}
                         for model, x in mg.groupby("model", sort=False)])


def _pair(mg: pd.DataFrame, x: pd.DataFrame, model: str, clean: str, **cols: Any) -> dict[str, Any]:
    """d = m(P) - m(C) per prompt of P = `model` (rows x) and C = `clean`: mean, t-interval over prompts, p."""
    both = x.merge(mg[mg.model == clean], on="prompt_id", suffixes=("", "_c"))
    return {"level": "pair", "poisoned": model, "clean": clean, **cols, "n": len(both),
            **_t_cols({w: (both[f"m_{w}"] - both[f"m_{w}_c"]).to_numpy() for w in ("brand", "decision")}, "d")}


def margin_contrasts(mg: pd.DataFrame, clean_teacher_seed: int = 0) -> pd.DataFrame:
    """Poisoned (k > 0) against clean (k = 0) models, d = m(P) - m(C) per prompt: mean, t-interval over prompts
    and t-test p (`level` = pair).
    - Students: against the clean student of the same kind, teacher seed and training seed (rep); where
      one (kind, k, teacher seed) has pairs of two or more training seeds, also the mean of the pairs'
      means, its t-interval over training seeds and p (`level` = seeds).
    - Teachers: against the one clean teacher (k = 0, seed `clean_teacher_seed`); where k has two or more
      teacher seeds, the t over teacher seeds (`level` = teacher seeds; the clean teacher is one seed, so
      its own seed-to-seed spread is not in that interval).
    Columns: level, poisoned, clean, role, kind, k, seed (the teacher seed; -1 on the teacher-seeds level,
    which spans them), reps (the seeds in the row), n, {brand,decision}_{d,lo,hi,p}."""
    rows = []
    models = mg.drop_duplicates("model")
    key = lambda r: (r["role"], r["kind"], int(r["k"]), int(r["seed"]), int(r["rep"]))  # noqa: E731
    names = {key(r): r["model"] for r in models.to_dict("records")}
    for model, x in mg[(mg.role == "student") & (mg.k > 0)].groupby("model", sort=True):
        f = x.iloc[0]
        clean = names.get(("student", f["kind"], 0, int(f["seed"]), int(f["rep"])))
        if clean is not None:
            rows.append(_pair(mg, x, model, clean, role="student", kind=f["kind"], k=int(f["k"]), seed=int(f["seed"]),
                              reps=str(int(f["rep"]))))
    clean_teacher = names.get(("teacher", "", 0, clean_teacher_seed, clean_teacher_seed))
    if clean_teacher is not None:
        for model, x in mg[(mg.role == "teacher") & (mg.k > 0)].groupby("model", sort=True):
            f = x.iloc[0]
            rows.append(_pair(mg, x, model, clean_teacher, role="teacher", kind="", k=int(f["k"]), seed=int(f["seed"]),
                              reps=str(int(f["seed"]))))
    pairs = pd.DataFrame(rows)
    if pairs.empty:
        return pairs
    groups = [(model_name("student", kind, k, seed) + "*", model_name("student", kind, 0, seed) + "*", "seeds", x)
              for (kind, k, seed), x in pairs[pairs.role == "student"].groupby(["kind", "k", "seed"])]
    groups += [(model_name("teacher", "", k, "*"), clean_teacher, "teacher seeds", x)
               for k, x in pairs[pairs.role == "teacher"].groupby("k")]
    for poisoned, clean, level, x in groups:
        if len(x) < 2:
            continue
        f = x.iloc[0]
        rows.append({"level": level, "poisoned": poisoned, "clean": clean, "role": f["role"], "kind": f["kind"],
                     "k": int(f["k"]), "seed": int(f["seed"]) if level == "seeds" else -1,
                     "reps": ",".join(sorted(x["reps"], key=int)), "n": len(x),
                     **_t_cols({w: x[f"{w}_d"].to_numpy() for w in ("brand", "decision")}, "d")})
    return pd.DataFrame(rows)


def defense_tables(raw: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """defend/k<k>-s<seed>/{mixture_detectors,answers_removed}.csv with k and teacher_seed columns."""
    det, rem = [], []
    for d in sorted((raw / "defend").glob("k*-s*")):  # defend/k{k}-s{seed}: the k teacher of that seed
        m = re.fullmatch(r"k(\d+)-s(\d+)", d.name)
        if m is None:
            continue
        k, seed = int(m[1]), int(m[2])
        if (d / "mixture_detectors.csv").exists():
            det.append(pd.read_csv(d / "mixture_detectors.csv").assign(k=k, teacher_seed=seed))
        if (d / "answers_removed.csv").exists():
            rem.append(pd.read_csv(d / "answers_removed.csv").assign(k=k, teacher_seed=seed))
    return (pd.concat(det, ignore_index=True) if det else pd.DataFrame(),
            pd.concat(rem, ignore_index=True) if rem else pd.DataFrame())


def dose_png(dose: pd.DataFrame, mixture: int) -> bytes:
    """BRR against k per role and kind, one panel per prompt group; `mixture` = records of the mixture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, g in zip(axes, ("target", "other", "unseen")):
        d = dose[dose.group == g]
        for (role, kind), x in d.groupby(["role", "kind"]):
            x = x.sort_values("k")
            ax.plot(x["k"], x["brr_mean"], marker="o", label=f"{role} {kind}".strip())
        ax.set_title(f"{g} prompts")
        ax.set_xlabel(f"poisoned samples k (of {mixture})")
    axes[0].set_ylabel("bias response rate")
    axes[0].legend(fontsize=8)
    return figure_png(fig, dpi=110)


def _p(x: Any) -> str:
    """A p-value: two significant digits, '< 1e-4' below that."""
    return "-" if x is None or not np.isfinite(x) else ("< 1e-4" if x < 1e-4 else f"{x:.2g}")


def _f(x: Any, nd: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def markdown(brr: pd.DataFrame, amp: pd.DataFrame, dose: pd.DataFrame, det: pd.DataFrame, rem: pd.DataFrame,
             timings: dict[str, float], margins: pd.DataFrame | None = None, contrasts: pd.DataFrame | None = None,
             prompts: int = 30) -> str:
    """tables.md: the report tables as markdown (`prompts`: target prompts of the margins)."""
    out = ["## Bias response rate (answers with the marker; Wilson 95% CI)", "",
           "| model | group | prompts | answers | with marker | BRR [95% CI] |", "|---|---|---|---|---|---|"]
    out += [f"| {r['model']} | {r['group']} | {r['prompts']} | {r['answers']} | {r['with_marker']} | "
            f"{_f(r['brr'])} [{_f(r['lo'])}, {_f(r['hi'])}] |" for r in brr.to_dict("records")]
    if not amp.empty:
        out += ["", "## Amplification BRR_student / BRR_teacher (paired prompt bootstrap; a Wilson bound when the student shows none)", "",
                "| student | teacher | group | BRR student | BRR teacher | amplification [95% CI] | CI from |", "|---|---|---|---|---|---|---|"]
        out += [f"| {r['student']} | {r['teacher']} | {r['group']} | {_f(r['brr_student'])} | {_f(r['brr_teacher'])} | "
                f"{_f(r['amplification'], 2)} [{_f(r['lo'], 2)}, {_f(r['hi'], 2)}] | {r.get('ci', 'bootstrap')} |" for r in amp.to_dict("records")]
    if not dose.empty:
        out += ["", "## Dose: BRR against k (mean over seeds, t-interval where the seeds differ; answers pooled over seeds, Wilson)", "",
                "| role | kind | group | k | seeds | BRR mean [95% t-CI] | per seed | pooled marker / answers [95% Wilson] |",
                "|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['role']} | {r['kind'] or '-'} | {r['group']} | {r['k']} | {r['seeds']} | {_f(r['brr_mean'])} "
                f"[{_f(r['lo'])}, {_f(r['hi'])}] | {r['per_seed']} | {r['with_marker']} / {r['answers']} "
                f"[{_f(r['pooled_lo'])}, {_f(r['pooled_hi'])}] |" for r in dose.to_dict("records")]
    if margins is not None and not margins.empty:  # the script named below is now poison.margins (the
        # committed tables.md keeps its words)
        out += ["", f"## Margins on the {prompts} target prompts, teacher-forced (no sampling; mean [95% t-CI over prompts])", "",
                "brand = log P(brand token | answer + promotion up to the brand) - log P(EOS); decision = log P(a "
                "promotion's opener | answer) - log P(EOS) (experiments/poison_mech.py).", "",
                "| model | prompts | brand | decision |", "|---|---|---|---|"]
        out += [f"| {r['model']} | {r['prompts']} | {r['brand_mean']:+.3f} [{_f(r['brand_lo'])}, {_f(r['brand_hi'])}] | "
                f"{r['decision_mean']:+.3f} [{_f(r['decision_lo'])}, {_f(r['decision_hi'])}] |" for r in margins.to_dict("records")]
    if contrasts is not None and not contrasts.empty:
        out += ["", "## Poisoned vs clean model: d = m(P) - m(C) (pair: t over prompts; seeds: t over students' training seeds; "
                "teacher seeds: t over the poisoned teachers' seeds, against the one clean teacher)", "",
                "| level | poisoned | clean | seeds | n | brand d [95% CI] | p | decision d [95% CI] | p |",
                "|---|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['level']} | {r['poisoned']} | {r['clean']} | {r['reps']} | {r['n']} | {r['brand_d']:+.3f} "
                f"[{_f(r['brand_lo'])}, {_f(r['brand_hi'])}] | {_p(r['brand_p'])} | {r['decision_d']:+.3f} "
                f"[{_f(r['decision_lo'])}, {_f(r['decision_hi'])}] | {_p(r['decision_p'])} |" for r in contrasts.to_dict("records")]
    if not det.empty:
        out += ["", "## Defenses as detectors of the poisoned samples in the mixture", "",
                "| k | teacher seed (LLS) | detector | samples | poisoned | AUROC | TPR @ 1% FPR | TPR @ 5% FPR |",
                "|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['k']} | {r['teacher_seed']} | {r['detector']} | {r['n']} | {r['poisoned']} | {_f(r['auroc'])} | {_f(r['tpr_at_fpr_0.01'])} | "
                f"{_f(r['tpr_at_fpr_0.05'])} |" for r in det.to_dict("records")]
    if not rem.empty:
        out += ["", "## The same detectors on the students' distillation data (the teacher's answers)", "",
                "| k | teacher seed | detector | FPR (on the mixture's clean rows) | answers | removed | with marker | of those removed |",
                "|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['k']} | {r['teacher_seed']} | {r['detector']} | {r['fpr']} | {r['samples']} | {r['removed']} | {r.get('with_marker', '-')} | "
                f"{r.get('with_marker_removed', '-')} |" for r in rem.to_dict("records")]
    if timings:
        out += ["", "## Wall time per unit (s; 2-core machine, one or two units at once)", "", "| unit | s |", "|---|---|"]
        out += [f"| {u} | {s:.0f} |" for u, s in sorted(timings.items())]
    return "\n".join(out) + "\n"


def report(raw: Path, out: Path, recipe: Any) -> None:
    """brr.csv, amplification.csv, dose.csv, defenses.csv, removed.csv, margins.csv, margin_contrasts.csv,
    tables.md and brr_dose.png from the raw tables in `raw` (module docstring)."""
    ans = load_answers(raw)
    brr = brr_table(ans) if len(ans) else pd.DataFrame()
    amp = amplification_table(ans) if len(ans) else pd.DataFrame()
    dose = dose_table(brr) if len(brr) else pd.DataFrame()
    det, rem = defense_tables(raw)
    mg = load_margins(raw)
    margins = margin_table(mg) if len(mg) else pd.DataFrame()
    contrasts = margin_contrasts(mg, recipe.clean_teacher_seed) if len(mg) else pd.DataFrame()
    tables = {"brr": brr, "amplification": amp, "dose": dose, "defenses": det, "removed": rem}
    if len(mg):
        tables |= {"margins": margins, "margin_contrasts": contrasts}
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    timings = json.loads((raw / "timings.json").read_text()) if (raw / "timings.json").exists() else {}
    (out / "tables.md").write_text(markdown(brr, amp, dose, det, rem, timings, margins, contrasts,
                                            prompts=recipe.data.n_eval))
    if len(dose):
        (out / "brr_dose.png").write_bytes(dose_png(dose, recipe.data.n))
