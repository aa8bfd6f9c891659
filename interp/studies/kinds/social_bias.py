"""Social-bias transfer through distillation (seed 000) and whether debiasing survives it (seed 003);
DESIGN.md §2.11, reports/social_bias/README.md.

Data (`interp social-data`): gender–occupation stereotype sentences (WinoBias occupations skewed by the
BLS shares), their counterfactuals, the balanced (counterfactually augmented) sets, neutral Dolly text
and the held-out probe pairs. Teachers (`teachers`): the base + LoRA (`interp finetune`) on one
training set for S steps. Students (`students`: groups of arms x teachers x seeds), on N neutral rows
drawn by default_rng([seed, N]) (`draw_subset`; the same rows and order for every arm of a seed):
an arm with a kind (shd / kd) is `interp distill --kind K --form F --beta B --tau T` from each teacher of
its group into the model of its `student` role; an arm of kind none is `interp finetune` of that model
on the same rows (beta = 0, teacher-independent: baseline 2). Every model (the spec's own, teachers,
students) is evaluated by the evals its group names: probe-occupation (`interp crows` on the held-out
pairs), crows-gender (`interp crows --bias-type gender`), stereoset-<domain> (`interp stereoset
--domain`), perplexity (`interp perplexity`). `collect` writes the raw tables (per_pair.csv with every
recipe parameter as a column, evals/<model>/, runs/<model>.json, data/, timings.json) and `report` the
statistics (social_bias_report.py).

Model names in the tables: the spec's own models by their name, teachers `teacher-<name>`, students
`<arm>-<teacher>-n<N>-s<seed>` (`<arm>-n<N>-s<seed>` without a teacher); the store alias is a column.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field

from interp.errors import UserError
from interp.studies.execute import job_manifest, job_seconds
from interp.studies.graph import SELF, Arg, Graph, Job
from interp.studies.kinds import social_bias_report
from interp.studies.spec import Strict, Study

ROLES = ("base", "shd_student")
Role = Literal["base", "shd_student"]
Eval = Literal["probe-occupation", "crows-gender", "stereoset-gender", "stereoset-profession", "perplexity"]
EVALS: tuple[str, ...] = get_args(Eval)
TrainingSet = Literal["stereo", "anti", "balanced", "stereo_broad", "anti_broad", "balanced_broad"]
MODULE = "interp.studies.kinds.social_bias"


class Sources(Strict):
    """Data files (relative to the spec): the neutral text and the benchmarks."""

    dolly: str
    crows: str
    stereoset: str


class SocialData(Strict):
    """`interp social-data` options."""

    skew: int = Field(30, ge=1, le=49)
    broad_skew: int = Field(40, ge=1, le=49)
    ngram: int = Field(8, ge=1)
    max_prompt_words: int = Field(60, ge=1)


class Teacher(Strict):
    data: TrainingSet
    steps: int = Field(ge=1)
    evals: list[Eval] = list(EVALS)


class TeacherTraining(Strict):
    """LoRA fine-tuning of the base into a teacher."""

    lr: float = Field(2e-4, gt=0)
    lora_r: int = Field(8, ge=1)
    batch_size: int = Field(8, ge=1)
    max_len: int = Field(64, ge=4)
    seed: int = Field(0, ge=0)


class StudentTraining(Strict):
    """LoRA training of every student (distilled or beta = 0)."""

    lr: float = Field(2e-4, gt=0)
    lora_r: int = Field(8, ge=1)
    batch_size: int = Field(8, ge=1)
    max_len: int = Field(128, ge=4)
    epochs: float = Field(1.0, gt=0)


class Arm(Strict):
    student: Role  # the spec role of the model trained
    kind: Literal["shd", "kd", "none"] = "none"  # none: finetune on the rows alone (beta = 0, no teacher)
    form: Literal["sum", "convex"] = "sum"
    beta: float = Field(1.0, ge=0)
    tau: float = Field(1.0, gt=0)


class Students(Strict):
    """A group: every arm x teacher (arms of kind none: once) x seed, each evaluated on `evals`."""

    arms: list[str]
    teachers: list[str] = []
    seeds: list[int] = [0]
    examples: int = Field(256, ge=1)
    evals: list[Eval] = list(EVALS)


class Recipe(Strict):
    sources: Sources
    social_data: SocialData = SocialData()
    teachers: dict[str, Teacher]
    teacher_training: TeacherTraining = TeacherTraining()
    arms: dict[str, Arm]
    student_training: StudentTraining = StudentTraining()
    students: list[Students] = []
    untouched_evals: dict[Role, list[Eval]] = {}  # evals of the spec's own models (role -> evals)


# ---- the job graph --------------------------------------------------------------------------------


def student_name(arm: str, teacher: str | None, examples: int, seed: int) -> str:
    return f"{arm}-{teacher}-n{examples}-s{seed}" if teacher else f"{arm}-n{examples}-s{seed}"


def teacher_columns(r: Recipe, name: str) -> dict[str, Any]:
    """The teacher_* columns of a teacher (its data, the skew that made it, steps and training)."""
    t, tt = r.teachers[name], r.teacher_training
    skew = r.social_data.broad_skew if t.data.endswith("_broad") else r.social_data.skew
    return {"teacher_data": t.data, "teacher_skew": skew, "teacher_steps": t.steps, "teacher_lr": tt.lr,
            "teacher_lora_r": tt.lora_r, "teacher_batch_size": tt.batch_size, "teacher_max_len": tt.max_len,
            "teacher_seed": tt.seed}


def student_columns(r: Recipe, arm: str, teacher: str | None, examples: int, seed: int, study: Study) -> dict[str, Any]:
    """The recipe columns of a student (per_pair.csv)."""
    a, st = r.arms[arm], r.student_training
    distilled = a.kind != "none"
    return {"role": "student", "trained_from": study.model(a.student),
            "teacher": f"teacher-{teacher}" if teacher else None, **(teacher_columns(r, teacher) if teacher else {}),
            "arm": arm, "kind": a.kind, "form": a.form if distilled else None, "beta": a.beta if distilled else 0.0,
            "tau": a.tau if distilled else None, **{k: getattr(st, k) for k in social_bias_report.TRAINING_COLUMNS},
            "seed": seed, "examples": examples}


def planned_students(study: Study) -> dict[str, tuple[str, str | None, int, int, list[str]]]:
    """name -> (arm, teacher, examples, seed, evals) of every student the groups name (a student named
    by two groups once, with the union of their evals)."""
    r: Recipe = study.recipe
    out: dict[str, tuple[str, str | None, int, int, list[str]]] = {}
    for i, grp in enumerate(r.students):
        for what, names, known in (("arms", grp.arms, r.arms), ("teachers", grp.teachers, r.teachers)):
            bad = [x for x in names if x not in known]
            if bad:
                raise UserError(f"{study.path}: recipe.students.{i}.{what}: unknown '{bad[0]}' "
                                f"(the spec's {what}: {', '.join(known)})")
        for seed in grp.seeds:
            for arm in grp.arms:
                teachers: list[str | None] = list(grp.teachers) if r.arms[arm].kind != "none" else [None]
                if not teachers:
                    raise UserError(f"{study.path}: recipe.students.{i}: arm '{arm}' distils from a teacher "
                                    "but the group names no teachers")
                for t in teachers:
                    name = student_name(arm, t, grp.examples, seed)
                    evals = out[name][4] if name in out else []
                    out[name] = (arm, t, grp.examples, seed, [e for e in EVALS if e in {*evals, *grp.evals}])
    return out


def eval_argv(which: str, model: Arg, data: Job, study: Study, g: Graph) -> list[Arg]:
    """The command of one evaluation."""
    src = study.recipe.sources
    if which == "probe-occupation":  # the held-out gender–occupation pairs, scored as CrowS-Pairs
        args: list[Arg] = ["crows", "--model", model, "--data", g.out(data, "heldout_pairs.csv")]
    elif which == "crows-gender":
        args = ["crows", "--model", model, "--data", g.file(study.data(src.crows)), "--bias-type", "gender"]
    elif which.startswith("stereoset-"):
        args = ["stereoset", "--model", model, "--data", g.file(study.data(src.stereoset)),
                "--domain", which.removeprefix("stereoset-")]
    else:
        args = ["perplexity", "--model", model]
    return [*args, *study.loading()]


def build(study: Study, g: Graph) -> str:
    """social-data, teachers, subsets, students, evals, collect, report; returns the report job."""
    r: Recipe = study.recipe
    load, base, src, sd = study.loading(), study.model("base"), r.sources, r.social_data
    students = planned_students(study)
    data = g.command("social-data", [
        "social-data", "--dolly", g.file(study.data(src.dolly)), "--crows", g.file(study.data(src.crows)),
        "--stereoset", g.file(study.data(src.stereoset)), "--skew", str(sd.skew), "--broad-skew", str(sd.broad_skew),
        "--ngram", str(sd.ngram), "--max-prompt-words", str(sd.max_prompt_words)], **study.resources("social-data"))

    # models: (name, the model argument, its recipe columns, its training job or None, its evals)
    models: list[tuple[str, Arg, dict[str, Any], Job | None, list[str]]] = [
        (study.model(role), study.model(role), {"alias": study.model(role), "role": "untouched"}, None,
         [e for e in EVALS if e in evals]) for role, evals in r.untouched_evals.items()]
    labels = {study.model(role): role for role in r.untouched_evals}  # eval job names: the role, not the model
    tt = r.teacher_training
    teachers: dict[str, Job] = {}
    for name, t in r.teachers.items():
        teachers[name] = g.command(f"teacher-{name}", [
            "finetune", "--model", base, "--data", g.out(data, f"{t.data}.jsonl"), "--alias", SELF, "--lora",
            "--steps", str(t.steps), "--lr", f"{tt.lr:g}", "--lora-r", str(tt.lora_r), "--batch-size",
            str(tt.batch_size), "--max-len", str(tt.max_len), "--seed", str(tt.seed), *load],
            model=f"teacher-{name}", **study.resources("finetune"))
        models.append((f"teacher-{name}", g.model(teachers[name]),
                       {"role": "teacher", "trained_from": base, **teacher_columns(r, name)}, teachers[name],
                       [e for e in EVALS if e in t.evals]))

    st = r.student_training
    subsets: dict[tuple[int, int], Arg] = {}
    for name, (arm_name, teacher, n, seed, evals) in students.items():
        arm = r.arms[arm_name]
        if (n, seed) not in subsets:
            job = g.step(f"subset-n{n}-s{seed}", "interp.studies.steps:draw_subset", {"n": n, "seed": seed},
                         {"pool": g.out(data, "neutral.jsonl")})
            subsets[n, seed] = g.out(job, "subset.jsonl")
        common: list[Arg] = [
            "--data", subsets[n, seed], "--alias", SELF, "--lora", "--epochs", f"{st.epochs:g}", "--lr", f"{st.lr:g}",
            "--lora-r", str(st.lora_r), "--batch-size", str(st.batch_size), "--max-len", str(st.max_len),
            "--seed", str(seed), *load]
        if teacher is not None:
            argv: list[Arg] = ["distill", "--teacher", g.model(teachers[teacher]), "--student", study.model(arm.student),
                               "--kind", arm.kind, "--form", arm.form, "--beta", f"{arm.beta:g}", "--tau",
                               f"{arm.tau:g}", *common]
        else:
            argv = ["finetune", "--model", study.model(arm.student), *common]
        job = g.command(name, argv, model=name, **study.resources(str(argv[0])))
        cols = {"alias": None, **student_columns(r, arm_name, teacher, n, seed, study)}
        models.append((name, g.model(job), cols, job, evals))

    inputs: dict[str, Arg] = {"data": g.out(data)}
    described: list[dict[str, Any]] = []
    evaluated: list[dict[str, str]] = []
    for i, (name, model, cols, train, evals) in enumerate(models):
        label = labels.get(name, name) if train is None else name
        for which in evals:
            argv = eval_argv(which, model, data, study, g)
            ev = g.command(f"eval-{which}-{label}", argv, **study.resources(str(argv[0])))
            inputs[f"eval{len(evaluated)}"] = g.out(ev)
            evaluated.append({"model": name, "which": which})
        if train is not None:
            inputs[f"alias{i}"], inputs[f"train{i}"] = g.label(g.model(train)), g.out(train)
        described.append({"i": i, "name": name, **cols})
    collect = g.step("collect", f"{MODULE}:collect", {"models": described, "evals": evaluated}, inputs)
    template = study.report_dir / "README.in.md" if study.report_dir else None
    g.step("report", f"{MODULE}:report_step", {},
           {"raw": g.out(collect), **({"template": g.file(template)} if template and template.is_file() else {})})
    return "report"


# ---- steps ----------------------------------------------------------------------------------------

EVAL_FILES = {"crows": {"crows_pairs.csv": "{}_pairs.csv"},
              "stereoset": {"stereoset_items.csv": "{}_items.csv", "stereoset_scores.csv": "{}_scores.csv"},
              "perplexity": {"summary.json": "perplexity.json"}}


def eval_files(which: str) -> dict[str, str]:
    """The files an evaluation keeps in evals/<model>/: its command's file -> the name there."""
    command = "crows" if which in ("probe-occupation", "crows-gender") else which.split("-")[0]
    stem = which.replace("-", "_")
    return {src: dest.format(stem) for src, dest in EVAL_FILES[command].items()}


def collect(out: Path, params: dict[str, Any], **inputs: str) -> None:
    """The raw tables: evals/<model>/ (the commands' tables), per_pair.csv (one row per model and item,
    with the model's recipe columns), runs/<model>.json (each trained model's command, losses, recipe),
    data/ (social-data's output) and timings.json (seconds per job, from the manifests)."""
    timings: dict[str, float | None] = {}
    for k, e in enumerate(params["evals"]):
        dest = out / "evals" / e["model"]
        dest.mkdir(parents=True, exist_ok=True)
        for src, name in eval_files(e["which"]).items():
            shutil.copyfile(Path(inputs[f"eval{k}"]) / src, dest / name)
        timings[f"eval {e['model']} {e['which']}"] = job_seconds(inputs[f"eval{k}"])
    shutil.copytree(inputs["data"], out / "data")
    timings["social-data"] = job_seconds(inputs["data"])
    parts, runs = [], out / "runs"
    runs.mkdir()
    for m in params["models"]:
        cols = {c: m.get(c) for c in social_bias_report.RECIPE_COLUMNS}
        run = inputs.get(f"train{m['i']}")
        if run is not None:
            cols["alias"] = inputs[f"alias{m['i']}"]
            summary = json.loads((Path(run) / "summary.json").read_text())
            fig = summary["figures"]
            record = {"model": m["name"], **cols, "command": "interp " + " ".join(job_manifest(run).get("argv", [])),
                      "steps_done": fig.get("steps"), "seconds": job_seconds(run),
                      "losses": fig.get("components") or {k: fig.get(k) for k in ("first_loss", "mean_loss_last_10")}}
            (runs / f"{m['name']}.json").write_text(json.dumps(record, indent=1) + "\n")
            if (Path(run) / "losses.csv").exists():
                shutil.copyfile(Path(run) / "losses.csv", runs / f"{m['name']}_losses.csv")
            timings[f"train {m['name']}"] = job_seconds(run)
        parts.append(social_bias_report.with_recipe(
            social_bias_report.per_pair_rows(m["name"], out / "evals" / m["name"]), cols))
    import pandas as pd

    pd.concat(parts, ignore_index=True).to_csv(out / "per_pair.csv", index=False)
    (out / "timings.json").write_text(json.dumps({k: v for k, v in sorted(timings.items()) if v is not None},
                                                 indent=1) + "\n")


def report_step(out: Path, params: dict[str, Any], raw: str, template: str | None = None) -> None:
    """The raw tables, the README template and the report, in one folder (what the spec's report:
    folder receives)."""
    shutil.copytree(raw, out, dirs_exist_ok=True)
    if template is not None:
        shutil.copyfile(template, out / "README.in.md")
    social_bias_report.report(out, out)


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """The report tables from the raw tables alone (social_bias_report.report; the recipe is in them)."""
    social_bias_report.report(raw, out)
