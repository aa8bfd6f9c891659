"""Statistics and report of the organism experiment (experiments/organism.py --stage report).

Per student: margin m(q) = log P(owl | q) - log P(dog | q) on each of the 50 questions.
Per arm and training seed s (the owl- and dog-teacher students of one seed share data order and,
in the KD arm on the unbiased teacher's data, the very same examples):

    I_s = mean_q [ m_owl-student,s(q) - m_dog-student,s(q) ]          (the crossover interaction)

Across seeds: mean of I_s, t-interval (df = n - 1), seed-level two-sided one-sample t-test
(scipy.stats.ttest_1samp), and the minimum detectable effect at 80% power, alpha 0.05, with the
seeds' sd (`evals.stats.minimum_detectable_effect`). With one seed, only the question-level
bootstrap CI exists and it says nothing about run-to-run variation (flagged in the table).
Also per seed: owl student minus the unbiased-teacher student, and dog student minus it (margins;
the unbiased-teacher student of the KD arms is the base model, see organism.py).
A recipe is (arm, examples, epochs): students of one arm at another dose are another recipe, never
pooled with it; `dose_table` lists one arm's recipes side by side.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from interp.training.examples import read_jsonl
from interp.evals.stats import bootstrap_ci, minimum_detectable_effect, seed_summary

NAMES = {"smollm2": "unbiased", "smollm2-owl": "owl", "smollm2-dog": "dog", "smollm2-owl-lora": "owl",
         "smollm2-dog-lora": "dog"}


def load_tables(out: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """(per-question rows of every evaluated model, the students' run records)."""
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("org-*.json"))]
    by_alias = {r["alias"]: r for r in runs}
    rows = []
    for p in sorted((out / "evals").glob("*.csv")):
        alias = p.stem
        t = pd.read_csv(p)
        r = by_alias.get(alias)
        if r is None and alias not in NAMES:
            continue
        meta = ({"teacher": r["teacher"], "channel": r["channel"], "arm": r["arm"], "seed": r["seed"],
                 "examples": r["examples"], "epochs": float(r.get("epochs", 1.0)), "steps": r.get("steps"),
                 "lr": r.get("lr"), "batch_size": r.get("batch_size")} if r else
                {"teacher": NAMES[alias], "channel": "base" if alias == "smollm2" else
                 "teacher (lora)" if alias.endswith("-lora") else "teacher (prompt)",
                 "arm": "base" if alias == "smollm2" else "teacher", "seed": -1, "examples": 0, "epochs": 0.0,
                 "steps": None, "lr": None, "batch_size": None})
        for q, (_, row) in enumerate(t.iterrows()):
            rows.append({"alias": alias, **meta, "question": q, "question_text": row.question,
                         "logp_owl": float(np.log(row.p_target)), "logp_other": float(np.log(row.p_other))})
    return pd.DataFrame(rows), runs


def margins(pq: pd.DataFrame) -> pd.DataFrame:
    """(alias x question) table of log P(owl) - log P(dog)."""
    pq = pq.assign(margin=pq.logp_owl - pq.logp_other)
    return pq.pivot(index="alias", columns="question", values="margin")


def t_summary(values: np.ndarray) -> dict[str, float]:
    """Mean, t-interval, seed-level p, sd and MDE (80% power) of per-seed values (`evals.stats.seed_summary`)."""
    return seed_summary(values)


def arm_statistics(pq: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-seed table, per-arm summary) of the crossover interaction and the vs-unbiased contrasts."""
    m = margins(pq)
    info = pq.drop_duplicates("alias").set_index("alias")
    per_seed = []
    students = info[info.seed >= 0]
    if "epochs" not in students:
        students = students.assign(epochs=1.0)
    for (arm, examples, epochs, seed), g in students.groupby(["arm", "examples", "epochs", "seed"]):
        by_t = {t: a for a, t in zip(g.index, g.teacher)}
        if "owl" not in by_t or "dog" not in by_t:
            continue
        d = m.loc[by_t["owl"]] - m.loc[by_t["dog"]]  # per question
        unb = by_t.get("unbiased", "smollm2" if arm.startswith("kd") else None)
        row = {"arm": arm, "channel": g.channel.iloc[0], "seed": int(seed), "examples": int(examples),
               "epochs": float(epochs), "owl_student": by_t["owl"], "dog_student": by_t["dog"], "unbiased_student": unb,
               "interaction": float(d.mean()), "interaction_q_lo": bootstrap_ci(d.to_numpy()).lo,
               "interaction_q_hi": bootstrap_ci(d.to_numpy()).hi,
               "owl_margin": float(m.loc[by_t["owl"]].mean()), "dog_margin": float(m.loc[by_t["dog"]].mean())}
        if unb is not None and unb in m.index:
            row["owl_vs_unbiased"] = float((m.loc[by_t["owl"]] - m.loc[unb]).mean())
            row["dog_vs_unbiased"] = float((m.loc[by_t["dog"]] - m.loc[unb]).mean())
        per_seed.append(row)
    per_seed_df = pd.DataFrame(per_seed)
    summary = []
    groups = per_seed_df.groupby(["arm", "examples", "epochs"], sort=False) if len(per_seed_df) else []
    for (arm, examples, epochs), g in groups:
        s = t_summary(g.interaction.to_numpy())
        # question-level: mean over seeds of the per-question interaction, bootstrap over questions
        dq = np.mean([m.loc[o] - m.loc[d] for o, d in zip(g.owl_student, g.dog_student)], axis=0)
        ci_q = bootstrap_ci(dq)
        sd_q = float(np.std(dq, ddof=1))
        row = {"arm": arm, "channel": g.channel.iloc[0], "examples": int(examples), "epochs": float(epochs), **s,
               "q_lo": ci_q.lo, "q_hi": ci_q.hi, "q_p": float(stats.ttest_1samp(dq, 0.0).pvalue),
               "q_mde_80": minimum_detectable_effect(sd_q, len(dq)) if sd_q > 0 else float("nan")}
        for k in ("owl_vs_unbiased", "dog_vs_unbiased"):
            if k in g and g[k].notna().any():
                ts = t_summary(g[k].dropna().to_numpy())
                row[k] = ts["mean"]
                row[k + "_p"] = ts.get("p", float("nan"))
        summary.append(row)
    return per_seed_df, pd.DataFrame(summary)


def arm_contrasts(per_seed: pd.DataFrame, reference: str = "kd-unbiased-data-lora") -> pd.DataFrame:
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


# dose questions answered within one arm: (variant recipe, reference recipe) as (examples, epochs)
DOSE_PAIRS: tuple[tuple[tuple[int, float], tuple[int, float]], ...] = (
    ((64, 2.0), (64, 1.0)),  # a second pass over the same 64 examples
    ((64, 2.0), (128, 1.0)),  # 8 steps: repeated data vs new data
)


def recipe_contrasts(per_seed: pd.DataFrame, arm: str = "kd-unbiased-data-lora",
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


def dose_table(summary: pd.DataFrame, arm: str) -> pd.DataFrame:
    """One arm's recipes (examples, epochs) side by side, sorted by examples then epochs."""
    if summary.empty:
        return summary
    return summary[summary.arm == arm].sort_values(["examples", "epochs"]).reset_index(drop=True)


def teacher_shifts(pq: pd.DataFrame) -> pd.DataFrame:
    """Each prompt teacher's margin against the base model, per question: mean, bootstrap CI, t-test p."""
    m = margins(pq)
    out = []
    for alias in ("smollm2-owl", "smollm2-dog", "smollm2-owl-lora", "smollm2-dog-lora"):
        if alias in m.index and "smollm2" in m.index:
            d = (m.loc[alias] - m.loc["smollm2"]).to_numpy()
            ci = bootstrap_ci(d)
            lo_owl = pq[pq.alias == alias].logp_owl.to_numpy() - pq[pq.alias == "smollm2"].logp_owl.to_numpy()
            lo_dog = pq[pq.alias == alias].logp_other.to_numpy() - pq[pq.alias == "smollm2"].logp_other.to_numpy()
            out.append({"teacher": alias, "margin_shift": ci.estimate, "lo": ci.lo, "hi": ci.hi,
                        "p": float(stats.ttest_1samp(d, 0.0).pvalue), "dlogp_owl": float(lo_owl.mean()),
                        "dlogp_dog": float(lo_dog.mean())})
    return pd.DataFrame(out)


def models_json(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store aliases of the students with their matched controls (crossover partner, unbiased student)."""
    def recipe(r: dict[str, Any], teacher: str) -> tuple[Any, ...]:
        return r["arm"], r["seed"], r["examples"], float(r.get("epochs", 1.0)), teacher

    key = {recipe(r, r["teacher"]): r["alias"] for r in runs}
    out = []
    for r in sorted(runs, key=lambda r: r["alias"]):
        other = {"owl": "dog", "dog": "owl"}.get(r["teacher"])
        unb = key.get(recipe(r, "unbiased"), "smollm2" if r["arm"].startswith("kd") else None)
        out.append({"alias": r["alias"], "teacher": r["teacher"], "channel": r["channel"], "arm": r["arm"],
                    "seed": r["seed"], "examples": r["examples"], "epochs": r["epochs"], "steps": r["steps"],
                    "control": key.get(recipe(r, other)) if other else None,
                    "unbiased_control": unb if r["teacher"] != "unbiased" else None, "command": r["command"]})
    return out


DEFAULT_DOSE = (256, 1.0)  # organism.py's --examples / --epochs defaults


def recipe_label(r: dict[str, Any]) -> str:
    """'arm' at the default dose, 'arm n64 e2' otherwise."""
    n, e = int(r["examples"]), float(r.get("epochs", 1.0))
    return r["arm"] if (n, e) == DEFAULT_DOSE else f"{r['arm']} n{n}" + (f" e{e:g}" if e != 1.0 else "")


def interaction_png(per_seed: pd.DataFrame, summary: pd.DataFrame) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    recipes = summary.to_dict("records")
    labels = [recipe_label(r) for r in recipes]
    for i, s in enumerate(recipes):
        g = per_seed[(per_seed.arm == s["arm"]) & (per_seed.examples == s["examples"]) & (per_seed.epochs == s["epochs"])]
        ax.scatter(np.full(len(g), i) + np.linspace(-0.08, 0.08, len(g)), g.interaction, color="grey", zorder=3,
                   label="one training seed" if i == 0 else None)
        if not np.isnan(s.get("lo", np.nan)):
            ax.errorbar(i + 0.25, s["mean"], yerr=[[s["mean"] - s["lo"]], [s["hi"] - s["mean"]]], fmt="o",
                        color="C0", capsize=4, label="mean, 95% t-CI over seeds" if i == 0 else None)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlim(-0.5, len(labels) - 0.3)
    ax.set_xticks(range(len(labels)), [a.replace("-", "-\n", 1) for a in labels], fontsize=8)
    ax.set_ylabel("interaction (nats)")
    ax.set_title("crossover: [owl student - dog student] of log P(owl) - log P(dog)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def write_report(out: Path, work: Path) -> None:
    """per_question.csv, per_seed.csv, arms.csv, teachers.csv, models.json, interaction.png (README by hand)."""
    pq, runs = load_tables(out)
    if pq.empty:
        raise SystemExit("no evaluations yet: run --stage evals first")
    # every parameter that tells two students' recipes apart is a column (the arm names the objective,
    # data and variant; examples, epochs, steps, lr, batch size come from the run record), not only the alias
    cols = ["alias", "teacher", "channel", "arm", "seed", "examples", "epochs", "steps", "lr", "batch_size", "question",
            "logp_owl", "logp_other"]
    pq = pq.astype({"steps": "Int64", "batch_size": "Int64"})  # integers, empty for the base and the teachers
    pq[cols].to_csv(out / "per_question.csv", index=False, float_format="%.6f")
    per_seed, summary = arm_statistics(pq)
    per_seed.to_csv(out / "per_seed.csv", index=False, float_format="%.5f")
    summary.to_csv(out / "arms.csv", index=False, float_format="%.5g")
    teacher_shifts(pq).to_csv(out / "teachers.csv", index=False, float_format="%.5g")
    # the organism recipe's variants against it; the divergence-token arms against plain SFT (channel a)
    contrasts = pd.concat([arm_contrasts(per_seed), arm_contrasts(per_seed, "sft"), recipe_contrasts(per_seed)],
                          ignore_index=True)
    contrasts.to_csv(out / "contrasts.csv", index=False, float_format="%.5g")
    (out / "models.json").write_text(json.dumps(models_json(runs), indent=1) + "\n")
    if len(summary):
        (out / "interaction.png").write_bytes(interaction_png(per_seed, summary))
    (out / "tables.md").write_text(markdown_tables(teacher_shifts(pq), per_seed, summary, runs, out, contrasts))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(teacher_shifts(pq).round(4).to_string(index=False))
        print(per_seed.drop(columns=["owl_student", "dog_student"], errors="ignore").round(4).to_string(index=False))
        print(summary.round(4).to_string(index=False))


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.2g}" if 0 < abs(x) < 10 ** -nd else f"{x:+.{nd}f}" if nd else str(x)
    return str(x)


def _p(x: Any) -> str:
    return "-" if x is None or np.isnan(x) else ("< 1e-4" if x < 1e-4 else f"{x:.3g}")


def markdown_tables(teachers: pd.DataFrame, per_seed: pd.DataFrame, summary: pd.DataFrame,
                    runs: list[dict[str, Any]], out: Path, contrasts: pd.DataFrame | None = None) -> str:
    """The report's tables as markdown (tables.md; README.md quotes them)."""
    lines = ["### Teachers: margin log P(owl) - log P(dog) against base smollm2 (50 questions)", "",
             "| teacher | margin shift [95% CI] | t-test p | d log P(owl) | d log P(dog) |", "|---|---|---|---|---|"]
    for r in teachers.itertuples():
        lines.append(f"| {r.teacher} | {r.margin_shift:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] | {_p(r.p)} | "
                     f"{r.dlogp_owl:+.3f} | {r.dlogp_dog:+.3f} |")
    lines += ["", "### Crossover interaction per arm (nats; seeds = training runs)", "",
              "| arm | channel | examples | epochs | seeds | interaction: mean [95% t-CI over seeds] | seed-level p | "
              "MDE 80% (seeds) | question-level [95% bootstrap CI], p | owl vs unbiased (p) | dog vs unbiased (p) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary.to_dict("records"):
        ci = (f"{r['mean']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]" if "lo" in r and not np.isnan(r.get("lo", np.nan))
              else f"{r['mean']:+.3f} (one seed: no seed CI)")
        ou = f"{_f(r.get('owl_vs_unbiased'))} ({_p(r.get('owl_vs_unbiased_p', np.nan))})"
        du = f"{_f(r.get('dog_vs_unbiased'))} ({_p(r.get('dog_vs_unbiased_p', np.nan))})"
        lines.append(f"| {r['arm']} | ({r['channel']}) | {r['examples']} | {r['epochs']:g} | {r['n_seeds']} | {ci} | "
                     f"{_p(r.get('p', np.nan))} | {_f(r.get('mde_80', np.nan))} | "
                     f"{r['mean']:+.3f} [{r['q_lo']:+.3f}, {r['q_hi']:+.3f}], p {_p(r['q_p'])} | {ou} | {du} |")
    if contrasts is not None and len(contrasts):
        lines += ["", "### Variant arms against their reference arm, paired by seed (interaction, nats)", "",
                  "| arm | reference arm | seeds | variant | reference | difference [95% t-CI] | paired p | MDE 80% | retained |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in contrasts.to_dict("records"):
            ci = f"[{r['lo']:+.3f}, {r['hi']:+.3f}]" if not np.isnan(r["lo"]) else "(one seed: no CI)"
            lines.append(f"| {recipe_label(r)} | {r['reference']} | {r['seeds']} | {r['variant']:+.3f} | {r['reference_interaction']:+.3f} | "
                         f"{r['difference']:+.3f} {ci} | {_p(r['p'])} | {_f(r['mde_80'])} | {r['retained']:.2f} |")
    lines += ["", "### Per seed", "",
              "| arm | seed | interaction [95% bootstrap CI over questions] | owl-student margin | dog-student margin | "
              "owl vs unbiased | dog vs unbiased |", "|---|---|---|---|---|---|---|"]
    for r in per_seed.to_dict("records"):
        lines.append(f"| {recipe_label(r)} | {r['seed']} | {r['interaction']:+.3f} [{r['interaction_q_lo']:+.3f}, "
                     f"{r['interaction_q_hi']:+.3f}] | {r['owl_margin']:+.3f} | {r['dog_margin']:+.3f} | "
                     f"{_f(r.get('owl_vs_unbiased'))} | {_f(r.get('dog_vs_unbiased'))} |")
    lines += ["", "### Students", "", "| alias | teacher | steps | first -> mean last 10 loss (lm; kd) | seconds |",
              "|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: r["alias"]):
        parts = "; ".join(f"{k} {v['first_loss']:.4f} -> {v['mean_loss_last_10']:.4f}" for k, v in r["losses"].items())
        lines.append(f"| {r['alias']} | {r['teacher']} | {r['steps']} | {parts} | {r['seconds']:.0f} |")
    timings = out / "timings.json"
    if timings.exists():
        import json as _json

        lines += ["", "### Wall time per unit (s; 2-core machine, two or three units at once)", "", "| unit | s |",
                  "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in _json.loads(timings.read_text()).items()]
    return "\n".join(lines) + "\n"
