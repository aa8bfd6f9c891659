"""The subliminal pipeline (DESIGN.md §2.7, issue 6): a system-prompt teacher's number lists -> students.

    teacher         interp teach --method prompt (base + the trait system prompt)
    numbers-teacher interp gen-numbers from the teacher; numbers-control: the same from base (same prompts)
    subset-<data>   `examples` rows of each set (seeded subsample, original order), so every student sees as many
    <student>       interp finetune of base on its set (LoRA / full / full with MLP or attention frozen)
    eval-<model>    interp eval-animal of base, the teacher and every student (P(trait) per question, samples)
    collect         the raw tables: per_question.csv, answers.csv.gz, gen_counts.json, students.json, timings.json
    report          results.csv, student_vs_control.csv, README.md (`report`)

Report statistics: mean P(trait) over the questions (bootstrap 95% CI); delta log P = mean over questions of
log P_model - log P_base (bootstrap CI, sign-flip p); sampled trait rate (Wilson CI); each student on the
teacher's numbers against the control student of the same method (freeze none), the same delta.

    interp study run studies/subliminal/smollm2.yaml --cores 2
    interp study report studies/subliminal/smollm2.yaml --raw reports/subliminal --out runs/subliminal-report
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from interp.studies.execute import job_seconds
from interp.studies.graph import SELF, Graph
from interp.studies.spec import Strict, Study

ROLES = ("base",)
MODULE = "interp.studies.kinds.subliminal"
DATA = ("teacher", "control")  # index = the subsample's seed offset


class Student(Strict):
    data: Literal["teacher", "control"]
    method: Literal["lora", "full"] = "lora"
    freeze: Literal["none", "mlp", "attention"] = "none"


class Recipe(Strict):
    """Every parameter of the pipeline (defaults: the committed run of reports/subliminal)."""

    trait: str = "owl"
    n_prompts: int = Field(1200, ge=1)
    samples_per_prompt: int = Field(32, ge=1)
    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0)
    gen_batch_size: int = Field(512, ge=1)
    examples: int = Field(1083, ge=1, description="training rows per student (each set must hold as many)")
    epochs: float = Field(0.5, gt=0, description="steps = ceil(epochs * examples / batch_size) unless `steps`")
    steps: int | None = Field(None, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float | None = Field(None, gt=0, description="default 2e-4 LoRA, 2e-5 full")
    max_len: int = Field(192, ge=4)
    students: dict[str, Student] = {
        "student-lora": Student(data="teacher", method="lora"),
        "student-full": Student(data="teacher", method="full"),
        "student-full-freeze-mlp": Student(data="teacher", method="full", freeze="mlp"),
        "student-full-freeze-attention": Student(data="teacher", method="full", freeze="attention"),
        "control-lora": Student(data="control", method="lora"),
        "control-full": Student(data="control", method="full"),
    }
    samples: int = Field(20, ge=1, description="sampled answers per question in the eval")
    seed: int = Field(0, ge=0)

    def train_steps(self) -> int:
        return self.steps or max(1, int(np.ceil(self.epochs * self.examples / self.batch_size)))


def build(study: Study, g: Graph) -> str:
    r: Recipe = study.recipe
    base, load = study.model("base"), study.loading()
    teacher = g.command("teacher", ["teach", "--method", "prompt", "--base", base, "--trait", r.trait, "--alias", SELF],
                        model="teacher")
    gen = ["--n", str(r.n_prompts), "--samples-per-prompt", str(r.samples_per_prompt), "--max-new-tokens",
           str(r.max_new_tokens), "--temperature", str(r.temperature), "--batch-size", str(r.gen_batch_size),
           "--seed", str(r.seed), *load]
    numbers = {"teacher": g.command("numbers-teacher", ["gen-numbers", "--model", g.model(teacher), *gen],
                                    **study.resources("gen-numbers")),
               "control": g.command("numbers-control", ["gen-numbers", "--model", base, *gen],
                                    **study.resources("gen-numbers"))}
    subsets = {d: g.step(f"subset-{d}", f"{MODULE}:draw_subset", {"n": r.examples, "seed": [r.seed, i]},
                         {"rows": g.out(numbers[d], "numbers.jsonl")}) for i, d in enumerate(DATA)}
    students = {}
    for name, s in r.students.items():
        students[name] = g.command(name, [
            "finetune", "--model", base, "--data", g.out(subsets[s.data], "train.jsonl"), f"--{s.method}",
            "--freeze", s.freeze, "--steps", str(r.train_steps()), "--batch-size", str(r.batch_size),
            *(["--lr", str(r.lr)] if r.lr else []), "--max-len", str(r.max_len), "--seed", str(r.seed),
            "--alias", SELF, *load], model="student", **study.resources("finetune"))
    models: dict[str, Any] = {"base": base, "teacher (prompt)": g.model(teacher),
                              **{n: g.model(j) for n, j in students.items()}}
    evals = {label: g.command(f"eval-{label.split(' ')[0]}", [
        "eval-animal", "--model", m, "--target", r.trait, "--samples", str(r.samples), "--seed", str(r.seed), *load],
        **study.resources("eval-animal")) for label, m in models.items()}
    inputs: dict[str, Any] = {f"numbers_{d}": g.out(j) for d, j in numbers.items()}
    for i, (label, m) in enumerate(models.items()):
        inputs[f"model{i}"], inputs[f"eval{i}"] = g.label(m), g.out(evals[label])
        if label in students:
            inputs[f"train{i}"] = g.out(students[label])
    collect = g.step("collect", f"{MODULE}:collect", {"labels": list(models), "recipe": r.model_dump()}, inputs)
    g.step("report", f"{MODULE}:report_step", {"recipe": r.model_dump()}, {"raw": g.out(collect)})
    return "report"


# ---- steps (func(out=Path, params=dict, **inputs))


def subsample(rows: list[Any], n: int, seed: list[int]) -> list[Any]:
    """n of `rows` drawn without replacement by numpy's default_rng(seed), in their original order."""
    from interp.errors import UserError

    if len(rows) < n:
        raise UserError(f"the number data hold {len(rows)} rows, fewer than the {n} every student must see "
                        "(lower recipe.examples or sample more prompts)")
    return [rows[i] for i in sorted(np.random.default_rng(seed).permutation(len(rows))[:n])]


def draw_subset(out: Path, params: dict[str, Any], rows: str) -> None:
    """train.jsonl: `params.n` rows of `rows` (subsample)."""
    from interp.training.examples import read_jsonl

    picked = subsample(read_jsonl(Path(rows)), params["n"], params["seed"])
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in picked))


def collect(out: Path, params: dict[str, Any], **inputs: str) -> None:
    """per_question.csv (model, alias, data, method, freeze, steps, batch_size, examples, lr, max_len, seed,
    question, p_target), answers.csv.gz (model, question, sample, answer, names_target), the number data and
    their samples, gen_counts.json, students.json (each student's training summary), timings.json."""
    r = params["recipe"]
    pq, answers, students, timings = [], [], {}, {}
    for i, label in enumerate(params["labels"]):
        ev = Path(inputs[f"eval{i}"])
        cols: dict[str, Any] = {"model": label, "alias": inputs[f"model{i}"], "data": "", "method": "", "freeze": ""}
        if f"train{i}" in inputs:
            s = r["students"][label]
            figures = json.loads((Path(inputs[f"train{i}"]) / "summary.json").read_text())["figures"]
            students[label] = {k: v for k, v in figures.items() if k != "store_path"}
            cols.update(data=s["data"], method=s["method"], freeze=s["freeze"], steps=figures["steps"],
                        batch_size=r["batch_size"], examples=figures["n_examples"], lr=r["lr"], max_len=r["max_len"],
                        seed=r["seed"])
            timings[f"finetune {label}"] = job_seconds(inputs[f"train{i}"])
        pq.append(pd.read_csv(ev / "probability.csv")[["question", "p_target"]].assign(**cols))
        answers.append(pd.read_csv(ev / "answers.csv", keep_default_na=False).assign(model=label))
        timings[f"eval {label}"] = job_seconds(inputs[f"eval{i}"])
    first = ["model", "alias", "data", "method", "freeze", "steps", "batch_size", "examples", "lr", "max_len", "seed"]
    table = pd.concat(pq, ignore_index=True)
    for c in ("steps", "batch_size", "examples", "max_len", "seed"):
        if c in table:
            table[c] = table[c].astype("Int64")  # blank for base and teacher, not a float
    table[[c for c in first if c in table] + ["question", "p_target"]].to_csv(out / "per_question.csv", index=False)
    ans = pd.concat(answers, ignore_index=True)
    with gzip.open(out / "answers.csv.gz", "wt") as fh:
        ans[["model", "question", "sample", "answer", "names_target"]].to_csv(fh, index=False)
    counts = {}
    for d, stem in (("teacher", "numbers"), ("control", "control")):
        src = Path(inputs[f"numbers_{d}"])
        shutil.copyfile(src / "numbers.jsonl", out / f"{stem}.jsonl")
        with open(src / "numbers_samples.csv", "rb") as fi, gzip.open(out / f"{d}_samples.csv.gz", "wb") as fo:
            shutil.copyfileobj(fi, fo)
        summary = json.loads((src / "summary.json").read_text())
        fig, inp = summary["figures"]["teacher"], summary["inputs"]
        counts[d] = {"model": fig["model"], **fig["counts"], "kept_share": fig["counts"]["kept"] / fig["counts"]["total"],
                     "samples_per_s": fig["samples_per_s"],
                     "settings": {k: v for k, v in inp.items() if k not in ("model", "control", "n", "start", "templates")},
                     "n_prompts": inp["n"]}
        timings[f"generate {d}"] = job_seconds(inputs[f"numbers_{d}"])
    (out / "gen_counts.json").write_text(json.dumps(counts, indent=1))
    (out / "students.json").write_text(json.dumps(students, indent=1))
    (out / "timings.json").write_text(json.dumps(timings, indent=1))


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    report(Path(raw), out, Recipe(**params["recipe"]))


# ---- report


def model_row(label: str, alias: str, p: np.ndarray, p_base: np.ndarray, answers: pd.DataFrame, seed: int) -> dict[str, Any]:
    """One row of results.csv: mean P (bootstrap CI), delta log P vs base (paired, sign-flip p), sampled rate
    (Wilson CI), the 5 most frequent answers."""
    from interp.evals.animal import top_answers
    from interp.evals.stats import bootstrap_ci, paired_test, wilson_interval

    mean, d = bootstrap_ci(p, seed=seed), paired_test(np.log(p), np.log(p_base), seed=seed)
    k, n = int(answers.names_target.sum()), len(answers)
    w = wilson_interval(k, n)
    return {"model": label, "alias": alias, "mean_p_owl": mean.estimate, "p_lo": mean.lo, "p_hi": mean.hi,
            "delta_log_p": d.mean_diff.estimate, "d_lo": d.mean_diff.lo, "d_hi": d.mean_diff.hi, "d_p_value": d.p_value,
            "owl_k": k, "owl_n": n, "owl_rate": w.estimate, "rate_lo": w.lo, "rate_hi": w.hi,
            "top_answers": ", ".join(f"{t.answer} {t.count}" for t in top_answers(answers, 5).itertuples())}


def control_of(pq: pd.DataFrame) -> dict[str, str]:
    """Each student trained on the teacher's numbers -> the control student of its method (freeze none)."""
    runs = pq.drop_duplicates("model").set_index("model")
    ctl = {m: c for c, (d, m, f) in runs[["data", "method", "freeze"]].iterrows() if d == "control" and f == "none"}
    return {s: ctl[r.method] for s, r in runs.iterrows() if r.data == "teacher" and r.method in ctl}


def summary_tables(pq: pd.DataFrame, answers: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results.csv (one row per model, the first is the base) and student_vs_control.csv."""
    p = {m: g.p_target.to_numpy() for m, g in pq.groupby("model", sort=False)}
    aliases = pq.drop_duplicates("model").set_index("model").alias
    base = next(iter(p))
    results = pd.DataFrame([model_row(m, aliases[m], v, p[base], answers[answers.model == m], seed) for m, v in p.items()])
    from interp.evals.stats import paired_test

    pairs = []
    for s, c in control_of(pq).items():
        d = paired_test(np.log(p[s]), np.log(p[c]), seed=seed)
        pairs.append({"student": s, "control": c, "delta_log_p": d.mean_diff.estimate, "lo": d.mean_diff.lo,
                      "hi": d.mean_diff.hi, "p_value": d.p_value})
    return results, pd.DataFrame(pairs)


def readme(counts: dict[str, Any], students: dict[str, Any], timings: dict[str, Any], df: pd.DataFrame,
           pv: pd.DataFrame, trait: str) -> str:
    """README.md: the number data, the preference of every model, students vs controls, the students, wall times."""
    roles = list(counts)
    keys = [k for k in next(iter(counts.values())) if isinstance(counts[roles[0]][k], (int, float))]
    teacher, base = counts["teacher"]["model"], counts["control"]["model"]
    temps = {c.get("settings", {}).get("temperature") for c in counts.values()} - {None}
    lines = [f"# Subliminal pipeline on {base}", "",
             f"Made by the study kind `subliminal` (`interp study run studies/subliminal/<spec>.yaml`). Teacher = {base} "
             f"+ the {trait} system prompt (`{teacher}`); control = {base}; temperature "
             f"{'/'.join(f'{t:g}' for t in sorted(temps))}; the same prompts for both.", "",
             "## Number data (§2.7 filter + letter filter + truncation; a sample can have several reasons)", "",
             "| figure | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{counts[r][k]:.4g}" if isinstance(counts[r][k], float) else str(counts[r][k])
                                            for r in roles) + " |")
    lines += ["", f"## {trait.capitalize()} preference (50 questions)", "",
              f"P({trait}) summed over variants; delta log P = mean over questions of log P_model({trait}) - log "
              f"P_base({trait}) (bootstrap 95% CI, sign-flip p); {trait} rate = sampled one-word answers naming "
              f"{trait}(s), Wilson 95% CI.", "",
              f"| model | mean P({trait}) [95% CI] | delta log P vs base [95% CI] (p) | {trait} rate [95% CI] (k/n) | "
              "top answers |", "|---|---|---|---|---|"]
    for r in df.to_dict(orient="records"):
        lines.append(f"| {r['model']} | {r['mean_p_owl']:.3e} [{r['p_lo']:.3e}, {r['p_hi']:.3e}] | "
                     f"{r['delta_log_p']:+.3f} [{r['d_lo']:+.3f}, {r['d_hi']:+.3f}] (p={r['d_p_value']:.3g}) | "
                     f"{r['owl_rate']:.3f} [{r['rate_lo']:.3f}, {r['rate_hi']:.3f}] ({r['owl_k']}/{r['owl_n']}) | "
                     f"{r['top_answers']} |")
    if len(pv):
        lines += ["", "## Students on teacher numbers vs the control student of the same method", "",
                  f"delta log P({trait}) = mean over the 50 questions of log P_student - log P_control (bootstrap 95% "
                  "CI, sign-flip p). The subliminal effect would show here as a positive, significant difference.", "",
                  f"| student | control | delta log P({trait}) [95% CI] | p |", "|---|---|---|---|"]
        for r in pv.to_dict(orient="records"):
            lines.append(f"| {r['student']} | {r['control']} | {r['delta_log_p']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | "
                         f"{r['p_value']:.3g} |")
        above = [r["student"] for r in pv.to_dict(orient="records") if r["lo"] > 0]
        below = [r["student"] for r in pv.to_dict(orient="records") if r["hi"] < 0]
        lines += ["", "Reading: " + (f"above their control: {', '.join(above)}. " if above else
                                     f"no student trained on the teacher's numbers prefers {trait}s more than its "
                                     "control. ")
                  + (f"Below their control (CI under 0): {', '.join(below)}. " if below else "")
                  + f"Every student moved away from the base model (the 'vs base' column), the control students "
                  f"included, so fine-tuning on number lists shifts P({trait}) by itself; only the student-vs-control "
                  "difference speaks to subliminal transfer. Each student is one training run (one seed): the CIs and "
                  "p-values are over the 50 questions, not over training runs, so they do not measure "
                  "run-to-run variation."]
    lines += ["", "## Students", "", "| run | method | freeze | steps | examples | trainable params | first loss | "
              "mean loss last 10 |", "|---|---|---|---|---|---|---|---|"]
    for n, s in students.items():
        c = s["config"]
        lines.append(f"| {n} | {c['method']} | {c['freeze']} | {s['steps']} | {s['n_examples']} | "
                     f"{s['trainable_params']:,} | {s['first_loss']:.3f} | {s['mean_loss_last_10']:.3f} |")
    lines += ["", "## Wall time per stage (2-core machine; stages that ran at once shared it)", "", "| stage | s |",
              "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    return "\n".join(lines) + "\n"


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """results.csv and student_vs_control.csv from per_question.csv and answers.csv.gz, and README.md.
    The committed run of reports/subliminal kept no per-question rows (only results.csv and
    student_vs_control.csv): for such a folder those two tables are taken as they are."""
    if (raw / "per_question.csv").exists():
        pq = pd.read_csv(raw / "per_question.csv", float_precision="round_trip", keep_default_na=False,
                         na_values=[""])
        answers = pd.read_csv(raw / "answers.csv.gz", keep_default_na=False)
        results, pairs = summary_tables(pq, answers, recipe.seed)
        results.to_csv(out / "results.csv", index=False)
        if len(pairs):
            pairs.to_csv(out / "student_vs_control.csv", index=False)
    else:
        for name in ("results.csv", "student_vs_control.csv"):
            if (raw / name).exists():
                shutil.copyfile(raw / name, out / name)
        results = pd.read_csv(out / "results.csv", float_precision="round_trip", keep_default_na=False)
        pairs = pd.read_csv(out / "student_vs_control.csv", float_precision="round_trip") \
            if (out / "student_vs_control.csv").exists() else pd.DataFrame()
    counts = json.loads((raw / "gen_counts.json").read_text())
    students = json.loads((raw / "students.json").read_text()) if (raw / "students.json").exists() else {}
    timings = json.loads((raw / "timings.json").read_text())
    (out / "README.md").write_text(readme(counts, students, timings, results, pairs, recipe.trait))
