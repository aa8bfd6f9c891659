"""Statistics and report of the organism study (kind `organism`; reports/organism/README.md).

The traits (A, B) = `recipe.traits` (the crossover pair: target, other). Per student: margin
m(q) = log P(A | q) - log P(B | q) on each eval question. Per arm, dose and training seed s (the A- and
B-teacher students of one seed share data order and, in the KD arms on the unbiased teacher's data,
the very same examples):

    I_s = mean_q [ m_A-student,s(q) - m_B-student,s(q) ]          (the crossover interaction)

Across seeds: mean of I_s, t-interval (df = n - 1), seed-level two-sided one-sample t-test
(scipy.stats.ttest_1samp), and the minimum detectable effect at 80% power, alpha 0.05, with the
seeds' sd (`evals.stats.minimum_detectable_effect`). With one seed, only the question-level
bootstrap CI exists and it says nothing about run-to-run variation (flagged in the table).
Also per seed: A student minus the unbiased-teacher student, and B student minus it (margins;
the unbiased-teacher student of the KD arms (named kd*) is the base model: KD of a model into
itself has a zero gradient). A recipe is (arm, examples, epochs): students of one arm at another
dose are another recipe, never pooled with it; `dose_table` lists one arm's recipes side by side.

Raw tables (the folder `report` reads; the committed reports/organism): evals/<alias>.csv
(`eval-animal` per question: question, p_target = P(A), p_other = P(B)), runs/<alias>.json (one per
student: alias, arm, channel, teacher, seed, examples, epochs, steps, lr, batch_size, command, losses,
seconds), roles.json (every evaluated alias that is not a student -> {teacher, channel, arm}: the base
has arm "base", the teachers arm "teacher"), keep_rate/<teacher>-t<T>.jsonl + _summary.json and
data/<pool>.jsonl (the keep-rate tables), timings.json (optional).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from interp.evals.stats import bootstrap_ci, minimum_detectable_effect, seed_summary
from interp.training.examples import read_jsonl

Traits = tuple[str, str]
UNBIASED = "unbiased"  # the teacher label of the base model and of its students
KD_PREFIX = "kd"  # arms named kd*: their unbiased-teacher student is the base model itself
# the organism recipe (reference arm) its variant arms `<reference>-*` are paired with (contrasts.csv)
REFERENCE_ARMS = ("kd-unbiased-data-lora", "sft")
DOSE_ARM = "kd-unbiased-data-lora"
# dose questions answered within one arm: (variant recipe, reference recipe) as (examples, epochs)
DOSE_PAIRS: tuple[tuple[tuple[int, float], tuple[int, float]], ...] = (
    ((64, 2.0), (64, 1.0)),  # a second pass over the same 64 examples
    ((64, 2.0), (128, 1.0)),  # 8 steps: repeated data vs new data
)


# ---- raw tables ------------------------------------------------------------------------------------
def read_roles(raw: Path) -> dict[str, dict[str, str]]:
    """roles.json: alias -> {teacher, channel, arm} of every evaluated model that is not a student,
    in the order the teachers table lists them."""
    return json.loads((raw / "roles.json").read_text())


def base_of(roles: dict[str, dict[str, str]]) -> str:
    """The alias whose role is the base (arm "base"); exactly one."""
    bases = [a for a, r in roles.items() if r["arm"] == "base"]
    if len(bases) != 1:
        raise ValueError(f"roles.json names {len(bases)} base models (arm 'base'), not one")
    return bases[0]


# what the raw tables record since issue 37 (the evaluated model's architecture family; the student's
# objective: kd / shd / kd-shared / lm, its beta and tau); absent from raw tables collected before
RECORDED = ("family", "objective", "beta", "tau")


def load_tables(raw: Path, roles: dict[str, dict[str, str]], traits: Traits) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """(per-question rows of every evaluated model, the students' run records). Columns of the rows:
    alias, teacher, channel, arm, seed, examples, epochs, steps, lr, optimizer, batch_size, family, objective,
    beta, tau, question, question_text, logp_<A>, logp_other; base and teachers have seed -1, examples 0,
    epochs 0 and no steps / lr / batch / objective."""
    runs = [json.loads(p.read_text()) for p in sorted((raw / "runs").glob("*.json"))]
    by_alias = {r["alias"]: r for r in runs}
    rows = []
    for p in sorted((raw / "evals").glob("*.csv")):
        alias = p.stem
        r = by_alias.get(alias)
        if r is None and alias not in roles:
            continue
        t = pd.read_csv(p)
        meta = ({"teacher": r["teacher"], "channel": r["channel"], "arm": r["arm"], "seed": r["seed"],
                 "examples": r["examples"], "epochs": float(r.get("epochs", 1.0)), "steps": r.get("steps"),
                 "lr": r.get("lr"), "optimizer": r.get("optimizer", "adamw"), "batch_size": r.get("batch_size"),
                 **{k: r.get(k) for k in RECORDED}} if r else
                {**{k: roles[alias][k] for k in ("teacher", "channel", "arm")}, "seed": -1, "examples": 0,
                 "epochs": 0.0, "steps": None, "lr": None, "optimizer": None, "batch_size": None,
                 "family": roles[alias].get("family"), "objective": None, "beta": None, "tau": None})
        for q, (_, row) in enumerate(t.iterrows()):
            rows.append({"alias": alias, **meta, "question": q, "question_text": row.question,
                         f"logp_{traits[0]}": float(np.log(row.p_target)), "logp_other": float(np.log(row.p_other))})
    return pd.DataFrame(rows), runs


# ---- statistics ------------------------------------------------------------------------------------
def margins(pq: pd.DataFrame, traits: Traits) -> pd.DataFrame:
    """(alias x question) table of log P(A) - log P(B)."""
    pq = pq.assign(margin=pq[f"logp_{traits[0]}"] - pq.logp_other)
    return pq.pivot(index="alias", columns="question", values="margin")


def base_in(pq: pd.DataFrame) -> str | None:
    """The alias of the base model among the rows (arm "base"), or None."""
    bases = pq[pq.arm == "base"].alias.unique()
    return str(bases[0]) if len(bases) else None


def t_summary(values: np.ndarray) -> dict[str, float]:
    """Mean, t-interval, seed-level p, sd and MDE (80% power) of per-seed values (`evals.stats.seed_summary`)."""
    return seed_summary(values)


def arm_statistics(pq: pd.DataFrame, traits: Traits,
                   references: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-seed table, per-recipe summary) of the crossover interaction and the vs-unbiased contrasts.
    The unbiased control of a seed: the arm's own unbiased-teacher student, else that of its reference arm
    (`references`: arm -> arm, same dose and seed; e.g. SFT of another family's student on the numbers),
    else the base for kd* arms."""
    a, b = traits
    m = margins(pq, traits)
    base = base_in(pq)
    info = pq.drop_duplicates("alias").set_index("alias")
    per_seed = []
    students = info[info.seed >= 0]
    if "epochs" not in students:
        students = students.assign(epochs=1.0)
    unbiased = {(arm, ex, ep, sd): al for al, arm, ex, ep, sd, t in
                zip(students.index, students.arm, students.examples, students.epochs, students.seed, students.teacher)
                if t == UNBIASED}
    references = references or {}
    for (arm, examples, epochs, seed), g in students.groupby(["arm", "examples", "epochs", "seed"]):
        by_t = {t: s for s, t in zip(g.index, g.teacher)}
        if a not in by_t or b not in by_t:
            continue
        d = m.loc[by_t[a]] - m.loc[by_t[b]]  # per question
        ref = unbiased.get((references.get(arm), examples, epochs, seed))
        unb = by_t.get(UNBIASED, ref if arm in references else base if arm.startswith(KD_PREFIX) else None)
        row = {"arm": arm, "channel": g.channel.iloc[0], "seed": int(seed), "examples": int(examples),
               "epochs": float(epochs), f"{a}_student": by_t[a], f"{b}_student": by_t[b], "unbiased_student": unb,
               "interaction": float(d.mean()), "interaction_q_lo": bootstrap_ci(d.to_numpy()).lo,
               "interaction_q_hi": bootstrap_ci(d.to_numpy()).hi,
               f"{a}_margin": float(m.loc[by_t[a]].mean()), f"{b}_margin": float(m.loc[by_t[b]].mean())}
        if unb is not None and unb in m.index:
            row[f"{a}_vs_unbiased"] = float((m.loc[by_t[a]] - m.loc[unb]).mean())
            row[f"{b}_vs_unbiased"] = float((m.loc[by_t[b]] - m.loc[unb]).mean())
        per_seed.append(row)
    per_seed_df = pd.DataFrame(per_seed)
    summary = []
    groups = per_seed_df.groupby(["arm", "examples", "epochs"], sort=False) if len(per_seed_df) else []
    for (arm, examples, epochs), g in groups:
        s = t_summary(g.interaction.to_numpy())
        # question-level: mean over seeds of the per-question interaction, bootstrap over questions
        dq = np.mean([m.loc[o] - m.loc[d] for o, d in zip(g[f"{a}_student"], g[f"{b}_student"])], axis=0)
        ci_q = bootstrap_ci(dq)
        sd_q = float(np.std(dq, ddof=1))
        row = {"arm": arm, "channel": g.channel.iloc[0], "examples": int(examples), "epochs": float(epochs), **s,
               "q_lo": ci_q.lo, "q_hi": ci_q.hi, "q_p": float(stats.ttest_1samp(dq, 0.0).pvalue),
               "q_mde_80": minimum_detectable_effect(sd_q, len(dq)) if sd_q > 0 else float("nan")}
        for k in (f"{a}_vs_unbiased", f"{b}_vs_unbiased"):
            if k in g and g[k].notna().any():
                ts = t_summary(g[k].dropna().to_numpy())
                row[k] = ts["mean"]
                row[k + "_p"] = ts.get("p", float("nan"))
        summary.append(row)
    return per_seed_df, pd.DataFrame(summary)


def with_perplexity(per_seed: pd.DataFrame, summary: pd.DataFrame, ppl: pd.DataFrame,
                    traits: Traits) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each student's held-out perplexity beside its interaction (per_seed: <A>_ppl, <B>_ppl, unbiased_ppl)
    and the mean over seeds of the two trait students' (arms: ppl, ppl_unbiased). `ppl`: perplexity.csv
    (alias, perplexity, ...): per token of the model's own tokenizer, so compare within a family."""
    if per_seed.empty:
        return per_seed, summary
    by = dict(zip(ppl.alias, ppl.perplexity))
    a, b = traits
    per_seed = per_seed.assign(**{f"{a}_ppl": per_seed[f"{a}_student"].map(by), f"{b}_ppl": per_seed[f"{b}_student"].map(by),
                                  "unbiased_ppl": per_seed.unbiased_student.map(by)})
    keys = ["arm", "examples", "epochs"]
    g = per_seed.groupby(keys, sort=False)
    means = pd.DataFrame({"ppl": g[[f"{a}_ppl", f"{b}_ppl"]].mean().mean(axis=1),
                          "ppl_unbiased": g.unbiased_ppl.mean()}).reset_index()
    return per_seed, summary.merge(means, on=keys, how="left")


def family_table(pq: pd.DataFrame, summary: pd.DataFrame, ppl: pd.DataFrame | None,
                 references: dict[str, str]) -> pd.DataFrame:
    """Students of several architecture families side by side (C8, issue 37): one row per family and
    recipe (arm, examples, epochs) with the recorded objective and beta, the crossover interaction of
    `summary` (mean, t-CI, seed-level p, MDE over seeds; empty for a teacher-free arm: SFT is beta 0) and
    the mean held-out perplexity of the recipe's students; then the family's untouched model (arm
    "untouched", or the base). `ppl_untouched`: that model's perplexity, beside every row of its family
    (perplexity is per token of the family's own tokenizer: compare within a family). Empty unless the
    rows record more than one family."""
    if "family" not in pq or pq.family.dropna().nunique() < 2:
        return pd.DataFrame()
    by_ppl = dict(zip(ppl.alias, ppl.perplexity)) if ppl is not None else {}
    models = pq.drop_duplicates("alias")
    untouched = {f: a for a, f, arm in zip(models.alias, models.family, models.arm) if arm in ("untouched", "base")}
    stats_of = {(r["arm"], r["examples"], r["epochs"]): r for r in summary.to_dict("records")}
    crossed = {k[0] for k in stats_of}  # the arms with an owl / dog pair
    rows = []
    students = models[models.seed >= 0]
    for (arm, examples, epochs), g in students.groupby(["arm", "examples", "epochs"], sort=False):
        family = str(g.family.iloc[0])
        s = stats_of.get((arm, int(examples), float(epochs)), {})
        objective = g.objective.iloc[0]
        beta = 0.0 if objective == "lm" else g.beta.iloc[0]
        trait = g[g.teacher != UNBIASED] if arm in crossed else g
        rows.append({"family": family, "arm": arm, "objective": objective, "beta": beta, "reference": references.get(arm),
                     "examples": int(examples), "epochs": float(epochs), "n_seeds": s.get("n_seeds", g.seed.nunique()),
                     "interaction": s.get("mean", np.nan), "lo": s.get("lo", np.nan), "hi": s.get("hi", np.nan),
                     "p": s.get("p", np.nan), "mde_80": s.get("mde_80", np.nan),
                     "ppl": float(np.mean([by_ppl.get(a, np.nan) for a in trait.alias])),
                     "ppl_untouched": by_ppl.get(untouched.get(family), np.nan)})
    for family, alias in untouched.items():
        rows.append({"family": family, "arm": models.set_index("alias").arm[alias], "objective": None, "beta": None,
                     "reference": None, "examples": 0, "epochs": 0.0, "n_seeds": 0, "interaction": np.nan, "lo": np.nan,
                     "hi": np.nan, "p": np.nan, "mde_80": np.nan, "ppl": by_ppl.get(alias, np.nan),
                     "ppl_untouched": by_ppl.get(alias, np.nan)})
    base = base_in(pq)
    first = models.set_index("alias").family.get(base) if base else None
    families = sorted(models.family.dropna().unique(), key=lambda f: (f != first, f))  # the base's family first
    order = {f: i for i, f in enumerate(families)}
    t = pd.DataFrame(rows)
    return (t.assign(_f=t.family.map(order), _b=t.beta.astype(float).fillna(-1.0))
            .sort_values(["_f", "examples", "objective", "_b"], na_position="first", kind="stable")
            .drop(columns=["_f", "_b"]).reset_index(drop=True))


def arm_contrasts(per_seed: pd.DataFrame, reference: str = REFERENCE_ARMS[0]) -> pd.DataFrame:
    """Each variant arm `reference-*` (drop-animals, freeze-mlp, ...) against `reference`, paired by seed:

        D_s = I_variant,s - I_reference,s,   retained = mean_s I_variant,s / mean_s I_reference,s

    over the seeds both arms have; t-interval and seed-level paired t-test of D_s (df = n - 1)."""
    if per_seed.empty:
        return pd.DataFrame()
    key = ["examples", "epochs", "seed"]
    ref = per_seed[per_seed.arm == reference].set_index(key).interaction
    out = []
    for arm in sorted(a for a in per_seed.arm.unique() if a.startswith(reference + "-")):
        var_all = per_seed[per_seed.arm == arm].set_index(key).interaction
        for (examples, epochs), var in var_all.groupby(level=["examples", "epochs"]):
            both = sorted(set(var.index) & set(ref.index))
            if not both:
                continue
            out.append(paired_row(arm, reference, examples, epochs, [k[2] for k in both],
                                  var.loc[both].to_numpy(), ref.loc[both].to_numpy()))
    return pd.DataFrame(out)


def paired_row(arm: str, reference: str, examples: int, epochs: float, seeds: list[int], v: np.ndarray,
               r: np.ndarray) -> dict[str, Any]:
    """One row of contrasts.csv: D_s = v_s - r_s over `seeds` (t_summary), and retained = mean v / mean r."""
    s = t_summary(v - r)
    return {"arm": arm, "reference": reference, "examples": int(examples), "epochs": float(epochs),
            "seeds": ",".join(str(k) for k in seeds), "n_seeds": len(seeds), "variant": float(v.mean()),
            "reference_interaction": float(r.mean()), "difference": s["mean"], "lo": s.get("lo", np.nan),
            "hi": s.get("hi", np.nan), "p": s.get("p", np.nan), "mde_80": s.get("mde_80", np.nan),
            "retained": float(v.mean() / r.mean())}


def recipe_contrasts(per_seed: pd.DataFrame, arm: str = DOSE_ARM,
                     pairs: tuple[tuple[tuple[int, float], tuple[int, float]], ...] = DOSE_PAIRS) -> pd.DataFrame:
    """Dose recipes of one arm against each other, paired by seed: for each ((n, e), (n_ref, e_ref)),

        D_s = I_arm(n, e),s - I_arm(n_ref, e_ref),s

    over the seeds both recipes have; the columns of `arm_contrasts` (reference = the reference recipe's label)."""
    if per_seed.empty:
        return pd.DataFrame()
    g = per_seed[per_seed.arm == arm].set_index(["examples", "epochs", "seed"]).interaction
    out = []
    for (n, e), (n_ref, e_ref) in pairs:
        try:
            var, ref = g.xs((n, e), level=["examples", "epochs"]), g.xs((n_ref, e_ref), level=["examples", "epochs"])
        except KeyError:
            continue
        both = sorted(set(var.index) & set(ref.index))
        if not both:
            continue
        out.append(paired_row(arm, f"{arm} n{n_ref} e{e_ref:g}", n, e, both, var.loc[both].to_numpy(),
                              ref.loc[both].to_numpy()))
    return pd.DataFrame(out)


def dose_table(summary: pd.DataFrame, arm: str) -> pd.DataFrame:
    """One arm's recipes (examples, epochs) side by side, sorted by examples then epochs."""
    if summary.empty:
        return summary
    return summary[summary.arm == arm].sort_values(["examples", "epochs"]).reset_index(drop=True)


def teacher_shifts(pq: pd.DataFrame, traits: Traits, teachers: Sequence[str] | None = None) -> pd.DataFrame:
    """Each teacher's margin against the base model, per question: mean, bootstrap CI, t-test p, and the
    mean shifts of log P(A) and log P(B). `teachers`: aliases in table order (default: the rows with arm
    "teacher", in row order)."""
    a, b = traits
    m = margins(pq, traits)
    base = base_in(pq)
    if teachers is None:
        teachers = list(pq[pq.arm == "teacher"].alias.unique())
    out = []
    for alias in teachers:
        if alias in m.index and base is not None:
            d = (m.loc[alias] - m.loc[base]).to_numpy()
            ci = bootstrap_ci(d)
            lo_a = pq[pq.alias == alias][f"logp_{a}"].to_numpy() - pq[pq.alias == base][f"logp_{a}"].to_numpy()
            lo_b = pq[pq.alias == alias].logp_other.to_numpy() - pq[pq.alias == base].logp_other.to_numpy()
            out.append({"teacher": alias, "margin_shift": ci.estimate, "lo": ci.lo, "hi": ci.hi,
                        "p": float(stats.ttest_1samp(d, 0.0).pvalue), f"dlogp_{a}": float(lo_a.mean()),
                        f"dlogp_{b}": float(lo_b.mean())})
    return pd.DataFrame(out)


def models_json(runs: list[dict[str, Any]], traits: Traits, base: str) -> list[dict[str, Any]]:
    """Store aliases of the students with their matched controls (crossover partner: the other trait's
    student of the same arm, seed and dose; unbiased student: `base` in the KD arms)."""
    def recipe(r: dict[str, Any], teacher: str) -> tuple[Any, ...]:
        return r["arm"], r["seed"], r["examples"], float(r.get("epochs", 1.0)), teacher

    a, b = traits
    key = {recipe(r, r["teacher"]): r["alias"] for r in runs}
    out = []
    for r in sorted(runs, key=lambda r: r["alias"]):
        other = {a: b, b: a}.get(r["teacher"])
        unb = key.get(recipe(r, UNBIASED), base if r["arm"].startswith(KD_PREFIX) else None)
        out.append({"alias": r["alias"], "teacher": r["teacher"], "channel": r["channel"], "arm": r["arm"],
                    "seed": r["seed"], "examples": r["examples"], "epochs": r["epochs"], "steps": r["steps"],
                    "control": key.get(recipe(r, other)) if other else None,
                    "unbiased_control": unb if r["teacher"] != UNBIASED else None, "command": r["command"]})
    return out


# ---- keep rate ---------------------------------------------------------------------------------------
def copied_share(prompt: str, answer: str) -> float:
    """Share of the answer's numbers that also appear in the prompt (its example sequence): 1.0 for an
    answer that only repeats given numbers; NaN for an answer without numbers."""
    given = set(re.findall(r"[0-9]+", prompt))
    nums = re.findall(r"[0-9]+", answer)
    return float(np.mean([x in given for x in nums])) if nums else float("nan")


def keep_rate_row(rows: list[dict[str, Any]], total: int) -> dict[str, float]:
    """Keep rate and the quality of the kept answers: kept / total, mean copied share, share of kept
    answers that only copy the prompt, new-number yield = kept answers with a number not in the prompt /
    total, distinct kept answers per kept answer."""
    copied = np.array([copied_share(r["prompt"], r["completion"]) for r in rows])
    return {"total": total, "kept": len(rows), "keep_rate": len(rows) / total if total else float("nan"),
            "copied_share": float(np.nanmean(copied)) if len(rows) else float("nan"),
            "only_copies": float(np.mean(copied == 1.0)) if len(rows) else float("nan"),
            # share of all samples that give a kept answer with at least one number not in the prompt
            "new_number_yield": float(np.sum(copied < 1.0)) / total if total else float("nan"),
            "distinct": len({(r["prompt"], r["completion"]) for r in rows}) / len(rows) if rows else float("nan")}


def keep_rate_table(folder: Path, pools: dict[str, Path], pool_total: int) -> pd.DataFrame:
    """One row per (teacher, temperature) of the keep-rate study in `folder` (<teacher>-t<T>.jsonl and its
    summary), plus each full pool (temperature 1, `pool_total` samples) as `scope = pool`."""
    out = []
    for summ in sorted(folder.glob("*_summary.json")):
        unit = summ.name[: -len("_summary.json")]
        teacher, t = unit.rsplit("-t", 1)
        counts = json.loads(summ.read_text())["figures"]["teacher"]["counts"]
        rows = read_jsonl(folder / f"{unit}.jsonl")
        out.append({"teacher": teacher, "temperature": float(t), "scope": "study",
                    **keep_rate_row(rows, counts["total"])})
    for teacher, pool in pools.items():
        if pool.exists():
            out.append({"teacher": teacher, "temperature": 1.0, "scope": "pool",
                        **keep_rate_row(read_jsonl(pool), pool_total)})
    return pd.DataFrame(out)


def keep_rate_by_format(rows: list[dict[str, Any]], prompts: list[str], suffixes: list[str], samples: int) -> pd.DataFrame:
    """Keep rate per format suffix of a pool whose prompt i got `samples` samples: kept rows of the prompts
    with that suffix / (samples x those prompts); the suffix of a prompt is the longest one it contains."""
    def suffix(p: str) -> str:
        hits = [x for x in suffixes if x in p]
        return max(hits, key=len) if hits else ""

    per_prompt = pd.Series([suffix(p) for p in prompts])
    kept = pd.DataFrame([{"format": suffix(prompts[r["index"]]),
                          "only_copy": copied_share(r["prompt"], r["completion"]) == 1.0} for r in rows])
    out = []
    for fmt, n_prompts in per_prompt.value_counts().items():
        k = kept[kept.format == fmt] if len(kept) else kept
        out.append({"format": fmt, "prompts": int(n_prompts), "kept": len(k), "keep_rate": len(k) / (samples * n_prompts),
                    "only_copies": float(k.only_copy.mean()) if len(k) else float("nan")})
    return pd.DataFrame(out).sort_values("keep_rate", ascending=False).reset_index(drop=True)


def keep_rate_tables(raw: Path, pools: Sequence[str], prompts: int, samples: int,
                     seed: int) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
    """(keep_rate.csv, keep_rate_by_format.csv) from raw/keep_rate/ and the full pools raw/data/<pool>.jsonl
    (prompts 0..prompts-1 of `generate_prompts(prompts, seed)`, `samples` each, temperature 1); None without
    keep-rate runs, by-format None without any pool."""
    if not sorted((raw / "keep_rate").glob("*_summary.json")):
        return None
    from interp.training.numbers_data import generate_prompts, load_templates

    paths = {p: raw / "data" / f"{p}.jsonl" for p in pools}
    table = keep_rate_table(raw / "keep_rate", paths, prompts * samples)
    texts, suffixes = generate_prompts(prompts, seed=seed), load_templates()["format_suffixes"]
    frames = [keep_rate_by_format(read_jsonl(path), texts, suffixes, samples).assign(teacher=p)
              for p, path in paths.items() if path.exists()]
    return table, pd.concat(frames, ignore_index=True) if frames else None


# ---- report -------------------------------------------------------------------------------------------
def recipe_label(r: dict[str, Any], default_dose: tuple[int, float]) -> str:
    """'arm' at the default dose (examples, epochs), 'arm n64 e2' otherwise."""
    n, e = int(r["examples"]), float(r.get("epochs", 1.0))
    return r["arm"] if (n, e) == tuple(default_dose) else f"{r['arm']} n{n}" + (f" e{e:g}" if e != 1.0 else "")


def interaction_png(per_seed: pd.DataFrame, summary: pd.DataFrame, traits: Traits,
                    default_dose: tuple[int, float]) -> bytes:
    """Per recipe: the seeds' interactions (grey) and their mean with the 95% t-CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = traits
    fig, ax = plt.subplots(figsize=(7, 3.6))
    recipes = summary.to_dict("records")
    labels = [recipe_label(r, default_dose) for r in recipes]
    for i, s in enumerate(recipes):
        g = per_seed[(per_seed.arm == s["arm"]) & (per_seed.examples == s["examples"]) & (per_seed.epochs == s["epochs"])]
        ax.scatter(np.full(len(g), i) + np.linspace(-0.08, 0.08, len(g)), g.interaction, color="grey", zorder=3,
                   label="one training seed" if i == 0 else None)
        if not np.isnan(s.get("lo", np.nan)):
            ax.errorbar(i + 0.25, s["mean"], yerr=[[s["mean"] - s["lo"]], [s["hi"] - s["mean"]]], fmt="o",
                        color="C0", capsize=4, label="mean, 95% t-CI over seeds" if i == 0 else None)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlim(-0.5, len(labels) - 0.3)
    ax.set_xticks(range(len(labels)), [x.replace("-", "-\n", 1) for x in labels], fontsize=8)
    ax.set_ylabel("interaction (nats)")
    ax.set_title(f"crossover: [{a} student - {b} student] of log P({a}) - log P({b})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def report(raw: Path, out: Path, recipe: Any) -> None:
    """per_question.csv, per_seed.csv, arms.csv, teachers.csv, contrasts.csv, models.json, tables.md,
    interaction.png, with students of several families families.csv (`family_table`) and, with keep-rate
    runs in raw, keep_rate.csv / keep_rate_by_format.csv (README by hand). `recipe`: organism.Recipe (traits, default_dose, numbers.prompts / samples / seed)."""
    raw, out = Path(raw), Path(out)
    traits: Traits = tuple(recipe.traits)  # type: ignore[assignment]
    default_dose = (int(recipe.default_dose[0]), float(recipe.default_dose[1]))
    roles = read_roles(raw)
    base = base_of(roles)
    pq, runs = load_tables(raw, roles, traits)
    if pq.empty:
        raise ValueError(f"no evaluations in {raw / 'evals'}")
    out.mkdir(parents=True, exist_ok=True)
    # every parameter that tells two students' recipes apart is a column (the arm names the objective,
    # data and variant; examples, epochs, steps, lr, batch size come from the run record), not only the alias
    recorded = [c for c in RECORDED if pq[c].notna().any()]  # none for raw tables collected before them
    cols = ["alias", "teacher", "channel", "arm", "seed", "examples", "epochs", "steps", "lr", "optimizer", "batch_size",
            *recorded, "question", f"logp_{traits[0]}", "logp_other"]
    pq = pq.astype({"steps": "Int64", "batch_size": "Int64"})  # integers, empty for the base and the teachers
    pq[cols].to_csv(out / "per_question.csv", index=False, float_format="%.6f")
    references = {n: arm.reference for n, arm in getattr(recipe, "arms", {}).items() if getattr(arm, "reference", None)}
    per_seed, summary = arm_statistics(pq, traits, references)
    ppl = pd.read_csv(raw / "perplexity.csv") if (raw / "perplexity.csv").exists() else None
    if ppl is not None:
        per_seed, summary = with_perplexity(per_seed, summary, ppl, traits)
    families = family_table(pq, summary, ppl, references)
    if len(families):
        families.to_csv(out / "families.csv", index=False, float_format="%.5g")
    per_seed.to_csv(out / "per_seed.csv", index=False, float_format="%.5f")
    summary.to_csv(out / "arms.csv", index=False, float_format="%.5g")
    teachers = teacher_shifts(pq, traits, [a for a, r in roles.items() if r["arm"] == "teacher"])
    teachers.to_csv(out / "teachers.csv", index=False, float_format="%.5g")
    # the organism recipe's variants against it; the divergence-token arms against plain SFT (channel a)
    contrasts = pd.concat([*(arm_contrasts(per_seed, ref) for ref in REFERENCE_ARMS), recipe_contrasts(per_seed)],
                          ignore_index=True)
    contrasts.to_csv(out / "contrasts.csv", index=False, float_format="%.5g")
    (out / "models.json").write_text(json.dumps(models_json(runs, traits, base), indent=1) + "\n")
    if len(summary):
        (out / "interaction.png").write_bytes(interaction_png(per_seed, summary, traits, default_dose))
    timings = raw / "timings.json"
    (out / "tables.md").write_text(markdown_tables(
        teachers, per_seed, summary, runs, traits, default_dose, base, int(pq.question.nunique()), contrasts,
        json.loads(timings.read_text()) if timings.exists() else None, families))
    if hasattr(recipe, "arms"):  # claims 3 and 4 of issue 36: teachers made by steering, optimizers
        from interp.studies.kinds.steering_report import steering_outputs

        steering_outputs(out, summary, per_seed, teachers, roles, runs, recipe)
    kr = keep_rate_tables(raw, (*traits, UNBIASED), recipe.numbers.prompts, recipe.numbers.samples,
                          recipe.numbers.seed)
    if kr is not None:
        kr[0].to_csv(out / "keep_rate.csv", index=False, float_format="%.4g")
        if kr[1] is not None:
            kr[1].to_csv(out / "keep_rate_by_format.csv", index=False, float_format="%.4g")


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.2g}" if 0 < abs(x) < 10 ** -nd else f"{x:+.{nd}f}" if nd else str(x)
    return str(x)


def _p(x: Any) -> str:
    return "-" if x is None or np.isnan(x) else ("< 1e-4" if x < 1e-4 else f"{x:.3g}")


def markdown_tables(teachers: pd.DataFrame, per_seed: pd.DataFrame, summary: pd.DataFrame,
                    runs: list[dict[str, Any]], traits: Traits, default_dose: tuple[int, float], base: str,
                    n_questions: int, contrasts: pd.DataFrame | None = None,
                    timings: dict[str, float] | None = None, families: pd.DataFrame | None = None) -> str:
    """The report's tables as markdown (tables.md; README.md quotes them)."""
    a, b = traits
    lines = [f"### Teachers: margin log P({a}) - log P({b}) against base {base} ({n_questions} questions)", "",
             f"| teacher | margin shift [95% CI] | t-test p | d log P({a}) | d log P({b}) |", "|---|---|---|---|---|"]
    for r in teachers.to_dict("records"):
        lines.append(f"| {r['teacher']} | {r['margin_shift']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | {_p(r['p'])} | "
                     f"{r[f'dlogp_{a}']:+.3f} | {r[f'dlogp_{b}']:+.3f} |")
    lines += ["", "### Crossover interaction per arm (nats; seeds = training runs)", "",
              "| arm | channel | examples | epochs | seeds | interaction: mean [95% t-CI over seeds] | seed-level p | "
              f"MDE 80% (seeds) | question-level [95% bootstrap CI], p | {a} vs unbiased (p) | {b} vs unbiased (p) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary.to_dict("records"):
        ci = (f"{r['mean']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]" if "lo" in r and not np.isnan(r.get("lo", np.nan))
              else f"{r['mean']:+.3f} (one seed: no seed CI)")
        ou = f"{_f(r.get(f'{a}_vs_unbiased'))} ({_p(r.get(f'{a}_vs_unbiased_p', np.nan))})"
        du = f"{_f(r.get(f'{b}_vs_unbiased'))} ({_p(r.get(f'{b}_vs_unbiased_p', np.nan))})"
        lines.append(f"| {r['arm']} | ({r['channel']}) | {r['examples']} | {r['epochs']:g} | {r['n_seeds']} | {ci} | "
                     f"{_p(r.get('p', np.nan))} | {_f(r.get('mde_80', np.nan))} | "
                     f"{r['mean']:+.3f} [{r['q_lo']:+.3f}, {r['q_hi']:+.3f}], p {_p(r['q_p'])} | {ou} | {du} |")
    if contrasts is not None and len(contrasts):
        lines += ["", "### Variant arms against their reference arm, paired by seed (interaction, nats)", "",
                  "| arm | reference arm | seeds | variant | reference | difference [95% t-CI] | paired p | MDE 80% | retained |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in contrasts.to_dict("records"):
            ci = f"[{r['lo']:+.3f}, {r['hi']:+.3f}]" if not np.isnan(r["lo"]) else "(one seed: no CI)"
            lines.append(f"| {recipe_label(r, default_dose)} | {r['reference']} | {r['seeds']} | {r['variant']:+.3f} | "
                         f"{r['reference_interaction']:+.3f} | {r['difference']:+.3f} {ci} | {_p(r['p'])} | "
                         f"{_f(r['mde_80'])} | {r['retained']:.2f} |")
    if families is not None and len(families):
        lines += ["", "### Across families: interaction and held-out perplexity per student family and recipe", "",
                  "| family | arm | objective | beta | examples | seeds | interaction [95% t-CI] | seed-level p | MDE 80% | "
                  "perplexity | untouched model's perplexity |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in families.to_dict("records"):
            ci = ("-" if np.isnan(r["interaction"]) else f"{r['interaction']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
                  if not np.isnan(r["lo"]) else f"{r['interaction']:+.3f} (one seed: no CI)")
            beta = "-" if r["beta"] is None or pd.isna(r["beta"]) else f"{float(r['beta']):g}"
            objective = "-" if pd.isna(r["objective"]) else r["objective"]
            ppl, ppl0 = ("-" if pd.isna(x) else f"{x:.2f}" for x in (r["ppl"], r["ppl_untouched"]))
            lines.append(f"| {r['family']} | {r['arm']} | {objective} | {beta} | {r['examples']} | {r['n_seeds']} | "
                         f"{ci} | {_p(r['p'])} | {_f(r['mde_80'])} | {ppl} | {ppl0} |")
    lines += ["", "### Per seed", "",
              f"| arm | seed | interaction [95% bootstrap CI over questions] | {a}-student margin | {b}-student margin | "
              f"{a} vs unbiased | {b} vs unbiased |", "|---|---|---|---|---|---|---|"]
    for r in per_seed.to_dict("records"):
        lines.append(f"| {recipe_label(r, default_dose)} | {r['seed']} | {r['interaction']:+.3f} "
                     f"[{r['interaction_q_lo']:+.3f}, {r['interaction_q_hi']:+.3f}] | {r[f'{a}_margin']:+.3f} | "
                     f"{r[f'{b}_margin']:+.3f} | {_f(r.get(f'{a}_vs_unbiased'))} | {_f(r.get(f'{b}_vs_unbiased'))} |")
    lines += ["", "### Students", "", "| alias | teacher | steps | first -> mean last 10 loss (lm; kd) | seconds |",
              "|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: r["alias"]):
        parts = "; ".join(f"{k} {v['first_loss']:.4f} -> {v['mean_loss_last_10']:.4f}" for k, v in r["losses"].items())
        secs = "-" if r.get("seconds") is None else f"{r['seconds']:.0f}"
        lines.append(f"| {r['alias']} | {r['teacher']} | {r['steps']} | {parts} | {secs} |")
    if timings is not None:
        lines += ["", "### Wall time per unit (s; 2-core machine, two or three units at once)", "", "| unit | s |",
                  "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in timings.items()]
    return "\n".join(lines) + "\n"


# ---- leak check (a step of the graph) -------------------------------------------------------------------
def leak_table(out: Path, params: dict[str, Any], pool: str, student: str, **models: str) -> None:
    """How much of the KD target is the trait words themselves? For each model of `models` (input name ->
    alias; rows in that order), on the first params["examples"] rows of `pool` tokenized as `student`
    tokenizes them (max params["max_len"], default 128), at every completion position the student is
    trained on: P(any token of A) and of B (`prompts.word_token_ids`: the set `distill --kd-drop-words`
    removes), summed over positions / positions. params: examples, traits [A, B], max_len, batch_size
    (default 16), device / dtype (load_model's; default cpu / fp32). Writes out/leak.csv:
    model, positions, mean_p_<A>_tokens, mean_p_<B>_tokens."""
    import torch

    from interp.models import load_model
    from interp.prompts import word_token_ids
    from interp.training.distill import KdTeacherInputs
    from interp.training.examples import IGNORE, collate, tokenize_examples

    a, b = params["traits"]
    batch = int(params.get("batch_size", 16))
    loading = {k: params[k] for k in ("device", "dtype") if k in params}
    rows = read_jsonl(pool)[: int(params["examples"])]
    lm_student = load_model(student, **loading)
    data = tokenize_examples(lm_student, rows, int(params.get("max_len", 128)))
    ids = {w: word_token_ids(lm_student.tokenizer, [w]) for w in (a, b)}
    pad = lm_student.tokenizer.pad_token_id
    table = []
    for alias in models.values():
        lm = load_model(alias, **loading)
        t_in = KdTeacherInputs(lm, rows, data)
        p_a, p_b, n = 0.0, 0.0, 0
        for start in range(0, len(rows), batch):
            idx = list(range(start, min(len(rows), start + batch)))
            labels = collate(data, idx, pad)["labels"]
            p = torch.softmax(t_in.logits(idx, labels).float(), -1)  # (positions, vocab)
            p_a += float(p[:, ids[a]].sum())
            p_b += float(p[:, ids[b]].sum())
            n += int((labels[:, 1:] != IGNORE).sum())
        table.append({"model": alias, "positions": n, f"mean_p_{a}_tokens": p_a / n, f"mean_p_{b}_tokens": p_b / n})
        del lm
    Path(out).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(table).to_csv(Path(out) / "leak.csv", index=False, float_format="%.4g")
