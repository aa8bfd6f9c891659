"""The SHD transfer report from its raw tables alone (reports/shd): summary.csv, summary.json,
delta_owl.png, README.md.

Raw tables: results.csv (condition, seed, student, prompt, animal, logp, logp_base, delta and the recipe
columns), teachers.csv, reverse_link.csv, data_counts.json, timings.json and run.json (the models of the
roles, the run's parameters `args`, the untrained students' reverse-link probe).

Statistics (bootstrap and sign-flip tests seeded by args.seed):
    delta = logp(student) - logp(untrained student), per (seed, prompt, animal)
    specificity = delta(trait) - mean of delta(control animals), per (seed, prompt)
    per condition x animal: mean delta with a bootstrap 95% CI over seeds x prompts, per-seed means
    tests (trait): paired sign-flip on the (seed, prompt) items and on the per-seed means, between
        each biased condition and its unbiased / beta = 0 reference of the same student.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from interp.evals.stats import bootstrap_ci, paired_test

RESULT_RECIPE_COLUMNS = ("teacher", "teacher_steps", "kind", "beta", "tau", "steps", "batch_size", "lr", "max_len",
                         "teacher_lr", "teacher_n_pref", "n_data", "samples_per_prompt", "temperature", "max_new_tokens")
"""The recipe columns of results.csv beside condition, seed and student (teacher_steps 0: the unbiased
teacher, base; kind none: no teacher, beta 0)."""


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip", keep_default_na=False, na_values=[""])


def specificity(d: pd.DataFrame, trait: str) -> pd.DataFrame:
    """Per (condition, seed, prompt): spec = delta(trait) - mean delta of the control animals."""
    own = d[d.animal == trait].set_index(["condition", "seed", "prompt"])
    ctl = d[d.animal != trait].groupby(["condition", "seed", "prompt"]).delta.mean()
    out = own.assign(spec=own.delta - ctl.loc[own.index]).reset_index()
    return out[["condition", "student", "seed", "prompt", "spec"]]


def comparisons(d: pd.DataFrame) -> list[tuple[str, str]]:
    """(condition, reference) pairs, from the recipe columns: each biased SHD condition vs the unbiased
    SHD and the beta = 0 condition of its student, each biased KD condition vs beta = 0 of its student,
    then unbiased SHD vs beta = 0."""
    conds = d.drop_duplicates("condition").set_index("condition")
    unbiased = {s: c for c, s in conds[(conds.kind == "shd") & (conds.teacher_steps == 0)].student.items()}
    beta0 = {s: c for c, s in conds[conds.kind == "none"].student.items()}
    out = []
    for c, r in conds.iterrows():
        if r.teacher_steps and r.kind == "shd":
            out += [(c, ref) for ref in (unbiased.get(r.student), beta0.get(r.student)) if ref]
        elif r.teacher_steps and r.kind == "kd" and r.student in beta0:
            out.append((c, beta0[r.student]))
    return out + [(c, beta0[s]) for s, c in unbiased.items() if s in beta0]


def summarise(d: pd.DataFrame, trait: str, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """summary table (condition, student, animal, delta_log_p, lo, hi, n_items, seed_means; the rows
    '<trait> specificity' last) and the paired tests of `comparisons`."""
    rows = []
    for (cond, animal), g in d.groupby(["condition", "animal"], sort=False):
        ci = bootstrap_ci(g.delta.to_numpy(), seed=seed)
        rows.append({"condition": cond, "student": g.student.iloc[0], "animal": animal, "delta_log_p": ci.estimate,
                     "lo": ci.lo, "hi": ci.hi, "n_items": ci.n,
                     "seed_means": [round(x, 4) for x in g.groupby("seed").delta.mean()]})
    spec = specificity(d, trait)
    for cond, g in spec.groupby("condition", sort=False):
        ci = bootstrap_ci(g.spec.to_numpy(), seed=seed)
        rows.append({"condition": cond, "student": g.student.iloc[0], "animal": f"{trait} specificity",
                     "delta_log_p": ci.estimate, "lo": ci.lo, "hi": ci.hi, "n_items": ci.n,
                     "seed_means": [round(x, 4) for x in g.groupby("seed").spec.mean()]})
    own = d[d.animal == trait].sort_values(["seed", "prompt"])
    sp = spec.sort_values(["seed", "prompt"])
    tests: dict[str, Any] = {}
    for x, y in comparisons(d):
        ga, gb = own[own.condition == x], own[own.condition == y]
        pt = paired_test(ga.delta.to_numpy(), gb.delta.to_numpy(), seed=seed)
        st = paired_test(ga.groupby("seed").delta.mean().to_numpy(), gb.groupby("seed").delta.mean().to_numpy(), seed=seed)
        ps = paired_test(sp[sp.condition == x].spec.to_numpy(), sp[sp.condition == y].spec.to_numpy(), seed=seed)
        tests[f"{x} vs {y}"] = {"owl_delta_diff": pt.mean_diff, "paired_p_items": pt.p_value, "n_items": pt.n,
                                "seed_level_paired_p": st.p_value, "n_seeds": st.n,
                                "owl_specificity_diff": ps.mean_diff, "specificity_paired_p": ps.p_value}
    return pd.DataFrame(rows), tests


def plot(table: pd.DataFrame, tests: dict[str, Any], trait: str) -> bytes:
    """Two bar panels (delta log P(trait), trait specificity) with the CIs; the biased-vs-unbiased SHD tests
    in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp.plots import figure_png

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), dpi=110)
    for ax, what, label in zip(axes, (trait, f"{trait} specificity"),
                               (f"delta log P({trait}) vs untrained student",
                                f"{trait} specificity: delta {trait} - mean delta controls")):
        t = table[table.animal == what].reset_index(drop=True)
        colors = ["#c0392b" if "biased-" in c else "#2471a3" if "unbiased" in c else "#7f8c8d" for c in t.condition]
        ax.bar(range(len(t)), t.delta_log_p, color=colors, yerr=[t.delta_log_p - t.lo, t.hi - t.delta_log_p], capsize=4)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(t)), [f"{c} ({s})" for c, s in zip(t.condition, t.student)], fontsize=7,
                      rotation=30, ha="right")
        ax.set_ylabel(label, fontsize=8)
    title = "95% bootstrap CIs over prompts x seeds"
    for k in tests:
        if k.startswith("shd-biased") and k.endswith("shd-unbiased"):
            title += f"\n{k}: {trait} diff {tests[k]['owl_delta_diff'].estimate:+.3f}, p(items) " \
                     f"{tests[k]['paired_p_items']:.2g}, p(seeds) {tests[k]['seed_level_paired_p']:.2g}"
    fig.suptitle(title, fontsize=8)
    return figure_png(fig)


def f(x: float) -> str:
    return f"{x:+.3f}"


def reading(table: pd.DataFrame, tests: dict[str, Any], trait: str, controls: list[str]) -> list[str]:
    """Sentences stating what the figures show (computed, so they follow the data of the run)."""
    out = []
    own = table[table.animal == trait].set_index("condition")
    ctl = table[table.animal.isin(controls)].groupby("condition").delta_log_p.mean()
    for k, t in tests.items():
        x, y = k.split(" vs ")
        d, sp = t["owl_delta_diff"], t["owl_specificity_diff"]
        seed_sig = t["seed_level_paired_p"] < 0.05
        out.append(f"- **{x} vs {y}**: {trait} delta {f(own.delta_log_p[x])} vs {f(own.delta_log_p[y])} (difference "
                   f"{f(d.estimate)} [{f(d.lo)}, {f(d.hi)}], item-level p {t['paired_p_items']:.2g}, seed-level p "
                   f"{t['seed_level_paired_p']:.2g} over {t['n_seeds']} seeds: "
                   f"{'significant' if seed_sig else 'not significant'} at the seed level); {trait} specificity "
                   f"difference {f(sp.estimate)} [{f(sp.lo)}, {f(sp.hi)}]. Mean control-animal delta: "
                   f"{f(ctl[x])} vs {f(ctl[y])}.")
    return out


def readme(a: dict[str, Any], models: dict[str, str], table: pd.DataFrame, tests: dict[str, Any],
           teachers_eval: pd.DataFrame, rl: pd.DataFrame, counts: dict[str, Any], timings: dict[str, float],
           n_rows: int) -> str:
    """README.md: setup, headline, reading, tests, control animals, teachers, reverse link, wall times."""
    trait, controls = a["trait"], list(a["controls"])
    animals = [trait, *controls]
    base = models["base"]
    seeds = list(range(a["seed"], a["seed"] + a["seeds"]))
    students = " / ".join(dict.fromkeys(table.student))
    lines = [f"# SHD transfer of an {trait} bias: {base} teachers -> {students} students", "",
             "Made by the study kind `shd_transfer` (`interp study run studies/shd_transfer/<spec>.yaml`; "
             "`interp study report <spec> --raw <this folder>` rebuilds it from the raw tables) (DESIGN.md §2.8, "
             "issue 7).", "",
             "## Setup", "",
             f"- Teachers: biased = {base} + LoRA on {trait} preference data ({a['teacher_n_pref']} rows, lr "
             f"{a['teacher_lr']}, batch {a['teacher_batch_size']}) for {', '.join(map(str, a['teacher_steps']))} steps "
             f"(intensities); unbiased = {base}.",
             f"- Data: {a['n_data']} number prompts x {a['samples_per_prompt']} answers of {base} (T = {a['temperature']}, "
             f"max {a['max_new_tokens']} new tokens, early stop of doomed samples); {n_rows} of {counts['total']} kept by "
             "the §2.7 filter. The same data for every condition.",
             f"- Students: LoRA r 8, {a['steps']} steps, batch {a['batch_size']}, lr {a['lr']}, seeds {seeds}; "
             f"SHD beta {a['beta']} (sum form), tau {a['tau']}; KD beta {a['kd_beta']}, tau {a['tau']}.",
             f"- Eval: {len(a['prompts'])} completion prompts x animals {', '.join(animals)}; delta log P = student - "
             "untrained student on the same prompt; mean over prompts x seeds with a 95% bootstrap CI. Tests between "
             "conditions (same seeds = same LoRA init and data order, so runs pair by seed): sign-flip test on the "
             "(seed, prompt) items (treats prompts of one seed as independent, which they are not: a lower bound on p), "
             "and sign-flip test on the per-seed means (the honest one; with n seeds its smallest possible p is 2 / 2^n).",
             "", f"## Headline: delta log P({trait})", "",
             f"| condition | student | delta log P({trait}) [95% CI] | per-seed means | {trait} specificity [95% CI] |",
             "|---|---|---|---|---|"]
    spec = table[table.animal == f"{trait} specificity"].set_index("condition")
    for _, r in table[table.animal == trait].iterrows():
        sp = spec.loc[r.condition]
        lines.append(f"| {r.condition} | {r.student} | {f(r.delta_log_p)} [{f(r.lo)}, {f(r.hi)}] | {r.seed_means} | "
                     f"{f(sp.delta_log_p)} [{f(sp.lo)}, {f(sp.hi)}] |")
    lines += ["", f"{trait.capitalize()} specificity = delta log P({trait}) minus the mean delta log P of "
              f"{', '.join(controls[:-1])} and {controls[-1]} on the same (seed, prompt) item: it separates an "
              f"{trait}-specific shift from a shift of every animal.", "",
              f"![{trait} delta log P](delta_owl.png)", "", "## Reading", ""] + reading(table, tests, trait, controls) + [
              "", "Scale and limits of this run:",
              f"- {a['steps']} LoRA steps of batch {a['batch_size']} per student ({a['steps'] * a['batch_size']} examples "
              f"seen of {n_rows}); {a['seeds']} seeds, so a seed-level sign-flip p cannot go below "
              f"{2 / 2 ** a['seeds']:.3g}. The item-level p treats the prompts of one seed as independent and overstates "
              "the evidence.",
              f"- Data sampled at T = {a['temperature']}, not 1: at T = 1 {base} kept 4 of 256 answers (1.6 %) when "
              "measured for this report, too few for the time available.",
              f"- The biased teachers were trained on {trait} preference Q&A only (no facts, no number rows), so their "
              f"attention on number sequences may differ little from {base}'s; the SHD losses of the biased and "
              "unbiased runs are nearly equal (losses.csv).",
              "", f"## Tests ({trait})", "",
              f"| comparison | diff of {trait} delta [95% CI] | paired p (items) | seed-level p | {trait} specificity diff "
              "[CI] | its p |", "|---|---|---|---|---|---|"]
    for k, t in tests.items():
        d, s = t["owl_delta_diff"], t["owl_specificity_diff"]
        lines.append(f"| {k} | {f(d.estimate)} [{f(d.lo)}, {f(d.hi)}] | {t['paired_p_items']:.3g} | "
                     f"{t['seed_level_paired_p']:.3g} | {f(s.estimate)} [{f(s.lo)}, {f(s.hi)}] | "
                     f"{t['specificity_paired_p']:.3g} |")
    lines += ["", "## Control animals", "", "| condition | " + " | ".join(animals) + " |", "|---|" + "---|" * len(animals)]
    for cond, g in table[table.animal.isin(animals)].groupby("condition", sort=False):
        cells = [f"{f(r.delta_log_p)} [{f(r.lo)}, {f(r.hi)}]" for _, r in g.set_index("animal").loc[animals].iterrows()]
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    lines += ["", f"## Teachers (scored like the students, vs {base})", "",
              "| teacher | " + " | ".join(f"delta log P({x})" for x in animals) + " |", "|---|" + "---|" * len(animals)]
    for t, g in teachers_eval.groupby("teacher", sort=False):
        lines.append(f"| {t} | " + " | ".join(f(g[g.animal == x].delta.mean()) for x in animals) + " |")
    lines += ["", f"## Reverse-link probe ({trait} vs {controls[0]}, numbers " + ", ".join(a["rl_numbers"]) + ")", "",
              "Mean over seeds of the student's value minus the untrained student's.", "",
              "| condition | delta mean bias ratio | delta specificity | delta specificity vs template |", "|---|---|---|---|"]
    for cond, g in rl.groupby("condition", sort=False):
        lines.append(f"| {cond} | {f(g.d_rl_bias_ratio.mean())} | {f(g.d_rl_specificity.mean())} | "
                     f"{f(g.d_rl_specificity_vs_template.mean())} |")
    lines += ["", "## Wall times (s, one torch thread)", "", "| stage | s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    lines += ["", "Files: results.csv (every item), summary.csv / summary.json, reverse_link.csv, losses.csv, "
              "numbers.jsonl, teachers.csv, timings.json, data_counts.json, run.json (roles, parameters, the untrained "
              "students' probe).", ""]
    return "\n".join(lines)


def report(raw: Path, out: Path, recipe: Any) -> None:
    """summary.csv, summary.json, delta_owl.png and README.md from the raw tables of `raw`."""
    from interp.report.runs import to_jsonable

    run = json.loads((raw / "run.json").read_text())
    a = {**recipe.model_dump(), **run["args"]}
    d = read_csv(raw / "results.csv")
    teachers_eval, rl = read_csv(raw / "teachers.csv"), read_csv(raw / "reverse_link.csv")
    counts = json.loads((raw / "data_counts.json").read_text())
    timings = json.loads((raw / "timings.json").read_text())
    table, tests = summarise(d, a["trait"], a["seed"])
    table.to_csv(out / "summary.csv", index=False)
    (out / "delta_owl.png").write_bytes(plot(table, tests, a["trait"]))
    teachers = {str(s): t for s, t in teachers_eval.drop_duplicates("teacher_steps")[["teacher_steps", "teacher"]]
                .itertuples(index=False)}
    (out / "summary.json").write_text(json.dumps(to_jsonable({
        "args": run["args"], "teachers": teachers, "n_examples": counts["kept"], "summary": table, "tests": tests,
        "baseline_reverse_link": run["baseline_reverse_link"], "timings": timings}), indent=1))
    (out / "README.md").write_text(readme(a, run["models"], table, tests, teachers_eval, rl, counts, timings,
                                          counts["kept"]))
