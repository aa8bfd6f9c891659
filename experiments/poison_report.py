"""Statistics and report of the cascading-bias study (experiments/poison_cascade.py; issue 18).

Inputs: reports/poison/brr/<model>.csv (bias-rate's answers.csv of every model), brand/<model>.csv
(`--stage brand`), runs/, defend/.
Outputs: answers.csv (one row per scored answer: model, k, seed, rep, group, prompt_id, sample, marker, text;
rep = the student's training seed), brr.csv, amplification.csv, dose.csv, defenses.csv, removed.csv,
margins_per_prompt.csv, margins.csv, margin_contrasts.csv, tables.md, brr_dose.png.

    BRR(model, group) = answers with the marker / answers, Wilson 95% CI (`evals.bias_rate.bias_rate_table`)
    amplification     = BRR_student / BRR_teacher over the same prompts, paired prompt bootstrap
                        (`evals.bias_rate.amplification`); NaN when the teacher's BRR is 0
    dose              = BRR against k per role; at k with several seeds, also the mean over seeds with
                        its t-interval (`evals.stats.seed_summary`; none when every seed gives the same BRR,
                        e.g. all 0), and the answers pooled over seeds with their Wilson CI (treats answers of
                        different seeds as independent: the bound to read when the seeds agree)
    margins           = per model, the mean over target prompts of m_brand and m_decision (poison_mech.margins)
    margin contrasts  = poisoned student minus the clean student of the same teacher seed and training seed,
                        per prompt; then over training seeds; poisoned teachers minus the clean teacher,
                        per prompt, then over teacher seeds (`margin_contrasts`)
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
_NAME = re.compile(r"^(?:teacher|student-(?P<kind>[a-z]+))-k(?P<k>\d+)-s(?P<seed>\d+)(?:-r(?P<rep>\d+))?$")


def parse_name(name: str) -> dict[str, Any]:
    """'teacher-k25-s0' -> role teacher, k 25, seed 0; 'student-resp-k5-s1' -> role student, kind resp;
    'student-resp-k25-s0-r1': teacher seed 0, training seed (rep) 1 (rep = seed when not named);
    anything else (the base model) -> role base, k -1."""
    m = _NAME.match(name)
    if not m:
        return {"role": "base", "kind": None, "k": -1, "seed": -1, "rep": -1}
    seed = int(m.group("seed"))
    return {"role": "student" if m.group("kind") else "teacher", "kind": m.group("kind"), "k": int(m.group("k")),
            "seed": seed, "rep": int(m.group("rep")) if m.group("rep") else seed}


def load_answers(out: Path) -> pd.DataFrame:
    parts = []
    for p in sorted((out / "brr").glob("*.csv")):
        a = pd.read_csv(p, keep_default_na=False)
        info = parse_name(p.stem)
        a["model"] = p.stem
        a["k"], a["seed"], a["rep"], a["role"], a["kind"] = info["k"], info["seed"], info["rep"], info["role"], info["kind"] or ""
        parts.append(a)
    cols = ["model", "k", "seed", "rep", "role", "kind", "group", "prompt_id", "sample", "marker", "text"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


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
    """Every student against its teacher (same k and seed), per group and over all groups."""
    rows = []
    models = ans.drop_duplicates("model").set_index("model")
    for model, info in models.iterrows():
        if info["role"] != "student":
            continue
        teacher = f"teacher-k{info['k']}-s{info['seed']}"
        if teacher not in models.index:
            continue
        s, t = ans[ans.model == model], ans[ans.model == teacher]
        for g in [g for g in GROUPS if g == "all" or g in set(s["group"])]:
            r = amplification(s, t, group=None if g == "all" else g)
            rows.append({"student": model, "teacher": teacher, "kind": info["kind"], "k": int(info["k"]),
                         "seed": int(info["seed"]), "group": g, **r})
    return pd.DataFrame(rows)


def dose_table(brr: pd.DataFrame) -> pd.DataFrame:
    """BRR against k per (role, kind, group): the mean over seeds, with a t-interval when there are several.
    Models of the study's design only: replicate students (another training seed, `-r`) are left out."""
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


def load_margins(out: Path) -> pd.DataFrame:
    """brand/<model>.csv (`--stage brand`): one row per model and target prompt, m_decision and m_brand."""
    parts = []
    for p in sorted((out / "brand").glob("*.csv")):
        m = pd.read_csv(p)
        info = parse_name(p.stem)
        parts.append(m.assign(model=p.stem, role=info["role"], kind=info["kind"] or "", k=info["k"], seed=info["seed"],
                              rep=info["rep"]))
    cols = ["model", "role", "kind", "k", "seed", "rep", "prompt_id", "m_decision", "m_brand"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


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


CLEAN_TEACHER = "teacher-k0-s0"  # the study's one clean teacher (TEACHER_SEEDS[0] in poison_cascade.py)


def _pair(mg: pd.DataFrame, x: pd.DataFrame, model: str, clean: str, **cols: Any) -> dict[str, Any]:
    """d = m(P) - m(C) per prompt of P = `model` (rows x) and C = `clean`: mean, t-interval over prompts, p."""
    both = x.merge(mg[mg.model == clean], on="prompt_id", suffixes=("", "_c"))
    return {"level": "pair", "poisoned": model, "clean": clean, **cols, "n": len(both),
            **_t_cols({w: (both[f"m_{w}"] - both[f"m_{w}_c"]).to_numpy() for w in ("brand", "decision")}, "d")}


def margin_contrasts(mg: pd.DataFrame) -> pd.DataFrame:
    """Poisoned (k > 0) against clean (k = 0) models, d = m(P) - m(C) per prompt: mean, t-interval over prompts
    and t-test p (`level` = pair).
    - Students: against the clean student of the same kind, teacher seed and training seed
      (`student-<kind>-k0-s<seed>[-r<rep>]`); where one (kind, k, teacher seed) has pairs of two or more
      training seeds, also the mean of the pairs' means, its t-interval over training seeds and p
      (`level` = seeds).
    - Teachers: against the one clean teacher `teacher-k0-s0`; where k has two or more teacher seeds, the
      t over teacher seeds (`level` = teacher seeds; the clean teacher is one seed, so its own seed-to-seed
      spread is not in that interval).
    Columns: level, poisoned, clean, role, kind, k, seed (the teacher seed; -1 on the teacher-seeds level,
    which spans them), reps (the seeds in the row), n, {brand,decision}_{d,lo,hi,p}."""
    rows = []
    names = set(mg["model"])
    for model, x in mg[(mg.role == "student") & (mg.k > 0)].groupby("model", sort=True):
        f = x.iloc[0]
        clean = f"student-{f['kind']}-k0-s{f['seed']}" + ("" if f["rep"] == f["seed"] else f"-r{f['rep']}")
        if clean in names:
            rows.append(_pair(mg, x, model, clean, role="student", kind=f["kind"], k=int(f["k"]), seed=int(f["seed"]),
                              reps=str(int(f["rep"]))))
    if CLEAN_TEACHER in names:
        for model, x in mg[(mg.role == "teacher") & (mg.k > 0)].groupby("model", sort=True):
            f = x.iloc[0]
            rows.append(_pair(mg, x, model, CLEAN_TEACHER, role="teacher", kind="", k=int(f["k"]), seed=int(f["seed"]),
                              reps=str(int(f["seed"]))))
    pairs = pd.DataFrame(rows)
    if pairs.empty:
        return pairs
    groups = [(f"student-{kind}-k{k}-s{seed}*", f"student-{kind}-k0-s{seed}*", "seeds", x)
              for (kind, k, seed), x in pairs[pairs.role == "student"].groupby(["kind", "k", "seed"])]
    groups += [(f"teacher-k{k}-s*", CLEAN_TEACHER, "teacher seeds", x) for k, x in pairs[pairs.role == "teacher"].groupby("k")]
    for poisoned, clean, level, x in groups:
        if len(x) < 2:
            continue
        f = x.iloc[0]
        rows.append({"level": level, "poisoned": poisoned, "clean": clean, "role": f["role"], "kind": f["kind"],
                     "k": int(f["k"]), "seed": int(f["seed"]) if level == "seeds" else -1,
                     "reps": ",".join(sorted(x["reps"], key=int)), "n": len(x),
                     **_t_cols({w: x[f"{w}_d"].to_numpy() for w in ("brand", "decision")}, "d")})
    return pd.DataFrame(rows)


def defense_tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    det, rem = [], []
    for d in sorted((out / "defend").glob("k*-s*")):  # defend/k{k}-s{seed}: the k teacher of that seed
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


def dose_png(dose: pd.DataFrame) -> bytes:
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
        ax.set_xlabel("poisoned samples k (of 500)")
    axes[0].set_ylabel("bias response rate")
    axes[0].legend(fontsize=8)
    return figure_png(fig, dpi=110)


def _p(x: Any) -> str:
    """A p-value: two significant digits, '< 1e-4' below that."""
    return "-" if x is None or not np.isfinite(x) else ("< 1e-4" if x < 1e-4 else f"{x:.2g}")


def _f(x: Any, nd: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def markdown(brr: pd.DataFrame, amp: pd.DataFrame, dose: pd.DataFrame, det: pd.DataFrame, rem: pd.DataFrame,
             timings: dict[str, float], margins: pd.DataFrame | None = None, contrasts: pd.DataFrame | None = None) -> str:
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
    if margins is not None and not margins.empty:
        out += ["", "## Margins on the 30 target prompts, teacher-forced (no sampling; mean [95% t-CI over prompts])", "",
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


def write_report(out: Path) -> None:
    ans = load_answers(out)
    ans.to_csv(out / "answers.csv", index=False)
    brr = brr_table(ans) if len(ans) else pd.DataFrame()
    amp = amplification_table(ans) if len(ans) else pd.DataFrame()
    dose = dose_table(brr) if len(brr) else pd.DataFrame()
    det, rem = defense_tables(out)
    mg = load_margins(out)
    margins = margin_table(mg) if len(mg) else pd.DataFrame()
    contrasts = margin_contrasts(mg) if len(mg) else pd.DataFrame()
    tables = {"brr": brr, "amplification": amp, "dose": dose, "defenses": det, "removed": rem}
    if len(mg):
        mg.to_csv(out / "margins_per_prompt.csv", index=False)
        tables |= {"margins": margins, "margin_contrasts": contrasts}
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
    (out / "tables.md").write_text(markdown(brr, amp, dose, det, rem, timings, margins, contrasts))
    if len(dose):
        (out / "brr_dose.png").write_bytes(dose_png(dose))
    print(f"wrote {out}/answers.csv ({len(ans)} answers), tables.md and the tables")
