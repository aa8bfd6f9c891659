"""A seed's own system as a spec (issue 33 item 7): a trait teacher made from `base`, distilled by
SHD (or KD) into another family (`student`), at the seed's scale (7B / 1B teachers on a GPU).

Jobs, in order:

    memory            parameters and memory of both architectures against the device (interp.studies.memory)
    social-data       (when the trait or the neutral text comes from it) stereotype sets, neutral Dolly text
    numbers           (numbers:) number prompts answered by `base` (`interp gen-numbers`)
    subset-n<N>-s<S>  (neutral:) N neutral rows per seed (`draw_subset`)
    teacher-s<T>      `base` + the trait, T steps: `interp teach --trait ANIMAL --method lora|qlora|full`
                      (an animal) or `interp finetune` on a stereotype set / file (--load-in-4bit: QLoRA)
    <arm>-t<T>-s<S>   `interp distill --kind shd|kd` from teacher-s<T> into `student`, seed S
    beta0-s<S>        (distill.baseline) `interp distill --kind none`: the same rows, L_LM alone
    eval-<e>-<model>  eval-animal (every model), reverse-link and trace (base and teachers), crows and
                      stereoset (every model)
    collect           the raw tables: items.csv (one row per model x metric x item, with every recipe
                      parameter as a column), trace/<model>/, memory.csv
    report            summary.csv (per model and metric: mean over items, bootstrap 95% CI) and transfer.csv
                      (per student condition and metric: per-seed student - untrained student, seed_summary)

Model names in the tables: base, student (the spec's untouched models), teacher-s<T>, <arm>-t<T>-s<S>,
beta0-s<S>; the spec's model names and the store aliases are columns.

    interp study run studies/seed_002/llama-3.2-1b-gpt2-medium.yaml --dry-run
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from interp.studies.graph import SELF, Arg, Graph, Job
from interp.studies.kinds.social_bias import SocialData, Sources, TrainingSet
from interp.studies.spec import Strict, Study

ROLES = ("base", "student")
Role = Literal["base", "student"]
Method = Literal["lora", "qlora", "full"]
MODULE = "interp.studies.kinds.seed_system"


class Trait(Strict):
    """What the teacher is taught: an animal (`interp teach`) or stereotype rows (`interp finetune`)."""

    animal: str | None = None
    n_preference: int | None = Field(None, ge=0)  # animal only: teach's trait rows (None: its defaults)
    n_facts: int | None = Field(None, ge=0)
    n_numbers: int | None = Field(None, ge=0)
    stereotype: TrainingSet | None = None  # a training set of `interp social-data`
    file: str | None = None  # or an own prompt / completion JSONL (relative to the spec)

    @model_validator(mode="after")
    def _one(self) -> Trait:
        given = [k for k in ("animal", "stereotype", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"name exactly one of animal, stereotype, file (got {', '.join(given) or 'none'})")
        rows = [k for k in ("n_preference", "n_facts", "n_numbers") if getattr(self, k) is not None]
        if rows and self.animal is None:
            raise ValueError(f"{rows[0]} applies to an animal trait only")
        return self


class TeacherTraining(Strict):
    """The teachers: one per entry of `steps` (the trait's intensity)."""

    method: Method = "lora"  # qlora: 4-bit base + LoRA (teach --method qlora / finetune --load-in-4bit)
    steps: list[int] = Field([200], min_length=1)
    lr: float | None = Field(None, gt=0)  # None: the command's default (2e-4 LoRA, 2e-5 full)
    batch_size: int = Field(8, ge=1)
    lora_r: int | None = Field(None, ge=1)  # stereotype / file teachers only (teach has no --lora-r)
    max_len: int | None = Field(None, ge=4)  # stereotype / file teachers only
    seed: int = Field(0, ge=0)


class Numbers(Strict):
    """Number prompts answered by `base` (`interp gen-numbers`): the students' rows (seed 002)."""

    n: int = Field(1000, ge=1)
    samples_per_prompt: int = Field(1, ge=1)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(256, ge=1)
    seed: int = Field(0, ge=0)


class Neutral(Strict):
    """Neutral text (seed 000): `examples` rows per student seed of social-data's neutral.jsonl or `file`."""

    file: str | None = None
    examples: int = Field(256, ge=1)


class Distillation(Strict):
    """Every student: LoRA (or QLoRA / full) on the rows, distilled from each teacher, per seed."""

    kind: Literal["shd", "kd"] = "shd"
    form: Literal["sum", "convex"] = "sum"  # sum: L_LM + beta L | convex: (1 - beta) L_LM + beta L
    beta: float = Field(1.0, gt=0)
    tau: float = Field(1.0, gt=0)
    baseline: bool = True  # also beta0-s<S>: kind none on the same rows (L_LM alone)
    seeds: list[int] = Field([0], min_length=1)
    method: Method = "lora"  # qlora: --load-in-4bit (teacher and student loaded in 4-bit)
    steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)  # one of steps / epochs (neither: 1 epoch)
    lr: float = Field(2e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    max_len: int = Field(128, ge=4)
    lora_r: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _length(self) -> Distillation:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        return self


class AnimalEval(Strict):
    """`interp eval-animal --target <trait>` on every model."""

    other: str | None = "dog"
    samples: int = Field(20, ge=0)
    variants: Literal["natural", "sum"] = "sum"
    seed: int = Field(0, ge=0)


class ReverseLink(Strict):
    """`interp reverse-link` (P(trait | number) / P(trait)) on base and the teachers."""

    control: str = "dog"
    numbers: list[str] = Field(min_length=1)
    template_control: int = Field(100, ge=0)
    multi_token: bool = True
    seed: int = Field(0, ge=0)


class Trace(Strict):
    """`interp trace` (residual / head trace, DLA, patching) on base and the teachers."""

    control: str = "dog"
    numbers: list[str] = Field(min_length=1)
    patch_top: int = Field(4, ge=0)
    patch_numbers: int = Field(20, ge=1)
    backend: Literal["bridge", "nnsight"] = "bridge"
    seed: int = Field(0, ge=0)


class Evals(Strict):
    animal: AnimalEval | None = None
    reverse_link: ReverseLink | None = None
    trace: Trace | None = None
    crows: list[str] = []  # CrowS-Pairs bias types ("all": every pair)
    stereoset: list[str] = []  # StereoSet domains


class Memory(Strict):
    """The memory job's device: fits = training GB <= headroom x device_gb (interp.studies.memory)."""

    device_gb: float = Field(80.0, gt=0)
    headroom: float = Field(0.8, gt=0, le=1)


class Recipe(Strict):
    configs: dict[Role, str] = {}  # role -> config.json (relative to the spec): the memory job runs offline
    memory: Memory = Memory()
    trait: Trait
    teacher: TeacherTraining = TeacherTraining()
    numbers: Numbers | None = None
    neutral: Neutral | None = None
    sources: Sources | None = None  # social-data's inputs and the benchmarks (crows, stereoset)
    social_data: SocialData = SocialData()
    distill: Distillation = Distillation()
    evals: Evals = Evals()

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if (self.numbers is None) == (self.neutral is None):
            raise ValueError("give exactly one of numbers (gen-numbers rows) and neutral (neutral text)")
        animal_evals = [k for k in ("animal", "reverse_link", "trace") if getattr(self.evals, k) is not None]
        if animal_evals and self.trait.animal is None:
            raise ValueError(f"evals.{animal_evals[0]} needs an animal trait")
        if self.sources is None and (needs_social_data(self) or self.evals.crows or self.evals.stereoset):
            raise ValueError("sources (dolly, crows, stereoset) are needed by social-data and the bias benchmarks")
        if self.trait.animal is not None and (self.teacher.lora_r or self.teacher.max_len):
            raise ValueError("teacher.lora_r / max_len: `interp teach` (animal traits) takes neither")
        return self


def needs_social_data(r: Recipe) -> bool:
    return r.trait.stereotype is not None or (r.neutral is not None and r.neutral.file is None)


# ---- the job graph --------------------------------------------------------------------------------


def teacher_argv(study: Study, data: Arg | None, steps: int) -> list[Arg]:
    """`interp teach` (an animal) or `interp finetune` (rows in `data`) of base for `steps` steps."""
    r: Recipe = study.recipe
    t, base = r.teacher, study.model("base")
    common: list[Arg] = ["--steps", str(steps), "--batch-size", str(t.batch_size),
                         *(["--lr", f"{t.lr:g}"] if t.lr else []), "--seed", str(t.seed), "--alias", SELF]
    if r.trait.animal is not None:
        rows = [a for k in ("n_preference", "n_facts", "n_numbers") if getattr(r.trait, k) is not None
                for a in (f"--{k.replace('_', '-')}", str(getattr(r.trait, k)))]
        return ["teach", "--base", base, "--trait", r.trait.animal, "--method", t.method, *rows, *common,
                *study.loading()]
    assert data is not None
    return ["finetune", "--model", base, "--data", data, "--full" if t.method == "full" else "--lora",
            *(["--lora-r", str(t.lora_r)] if t.lora_r else []), *(["--max-len", str(t.max_len)] if t.max_len else []),
            *common, *study.loading(), *(["--load-in-4bit"] if t.method == "qlora" else [])]


def distill_argv(study: Study, teacher: Arg | None, data: Arg, seed: int) -> list[Arg]:
    """`interp distill` of the student from `teacher` (None: kind none, the beta = 0 baseline)."""
    d: Distillation = study.recipe.distill
    loss: list[Arg] = ["--teacher", teacher, "--kind", d.kind, "--form", d.form, "--beta", f"{d.beta:g}",
                       "--tau", f"{d.tau:g}"] if teacher is not None else \
        ["--teacher", study.model("base"), "--kind", "none"]
    length = ["--steps", str(d.steps)] if d.steps else ["--epochs", f"{d.epochs or 1:g}"]
    return ["distill", *loss, "--student", study.model("student"), "--data", data,
            "--full" if d.method == "full" else "--lora", "--lora-r", str(d.lora_r), *length, "--lr", f"{d.lr:g}",
            "--batch-size", str(d.batch_size), "--max-len", str(d.max_len), "--seed", str(seed), "--alias", SELF,
            *study.loading(), *(["--load-in-4bit"] if d.method == "qlora" else [])]


def eval_argvs(study: Study, g: Graph, model: Arg, probes: bool) -> dict[str, list[Arg]]:
    """name -> command of every evaluation of one model (probes: also reverse-link and trace)."""
    r: Recipe = study.recipe
    e, out = r.evals, {}
    if e.animal:
        out["animal"] = ["eval-animal", "--model", model, "--target", r.trait.animal,
                         *(["--other", e.animal.other] if e.animal.other else []), "--samples", str(e.animal.samples),
                         "--variants", e.animal.variants, "--seed", str(e.animal.seed)]
    if probes and e.reverse_link:
        rl = e.reverse_link
        out["reverse-link"] = ["reverse-link", "--model", model, "--bias", r.trait.animal, "--control", rl.control,
                               "--numbers", ",".join(rl.numbers), "--template-control", str(rl.template_control),
                               *(["--multi-token"] if rl.multi_token else []), "--seed", str(rl.seed)]
    if probes and e.trace:
        tr = e.trace
        out["trace"] = ["trace", "--model", model, "--numbers", ",".join(tr.numbers), "--bias", r.trait.animal,
                        "--control", tr.control, "--patch-top", str(tr.patch_top), "--patch-numbers",
                        str(tr.patch_numbers), "--backend", tr.backend, "--seed", str(tr.seed)]
    for bt in e.crows:
        out[f"crows-{bt}"] = ["crows", "--model", model, "--data", g.file(study.data(r.sources.crows)),  # type: ignore[union-attr]
                              *(["--bias-type", bt] if bt != "all" else [])]
    for dom in e.stereoset:
        out[f"stereoset-{dom}"] = ["stereoset", "--model", model, "--data", g.file(study.data(r.sources.stereoset)),  # type: ignore[union-attr]
                                   "--domain", dom]
    return {k: [*v, *study.loading()] for k, v in out.items()}


def memory_inputs(study: Study, g: Graph) -> dict[str, Arg]:
    """role -> its config file (hashed) or, without recipe.configs, its model name (config fetched)."""
    cfg = study.recipe.configs
    return {role: g.file(study.data(cfg[role])) if role in cfg else study.model(role) for role in ROLES}


def build(study: Study, g: Graph) -> str:
    """memory, data, teachers, students, evals, collect, report; returns the report job."""
    r: Recipe = study.recipe
    src = r.sources
    mem = g.step("memory", f"{MODULE}:memory_step",
                 {"models": dict(study.spec.models), "dtype": study.spec.dtype, **r.memory.model_dump(),
                  "teacher_method": r.teacher.method, "student_method": r.distill.method,
                  "lora_r": r.distill.lora_r}, memory_inputs(study, g))
    social = None
    if needs_social_data(r):
        assert src is not None
        sd = r.social_data
        social = g.command("social-data", [
            "social-data", "--dolly", g.file(study.data(src.dolly)), "--crows", g.file(study.data(src.crows)),
            "--stereoset", g.file(study.data(src.stereoset)), "--skew", str(sd.skew), "--broad-skew",
            str(sd.broad_skew), "--ngram", str(sd.ngram), "--max-prompt-words", str(sd.max_prompt_words)],
            **study.resources("social-data"))
    rows: dict[int, Arg] = {}  # student seed -> its rows
    if r.numbers is not None:
        n = r.numbers
        numbers = g.command("numbers", [
            "gen-numbers", "--model", study.model("base"), "--n", str(n.n), "--samples-per-prompt",
            str(n.samples_per_prompt), "--temperature", f"{n.temperature:g}", "--max-new-tokens", str(n.max_new_tokens),
            "--batch-size", str(n.batch_size), "--seed", str(n.seed), *study.loading()], **study.resources("gen-numbers"))
        rows = {s: g.out(numbers, "numbers.jsonl") for s in r.distill.seeds}
    else:
        assert r.neutral is not None
        pool = g.file(study.data(r.neutral.file)) if r.neutral.file else g.out(social, "neutral.jsonl")  # type: ignore[arg-type]
        for s in r.distill.seeds:
            sub = g.step(f"subset-n{r.neutral.examples}-s{s}", "interp.studies.steps:draw_subset",
                         {"n": r.neutral.examples, "seed": s}, {"pool": pool})
            rows[s] = g.out(sub, "subset.jsonl")
    trait_rows: Arg | None = None
    if r.trait.stereotype is not None:
        trait_rows = g.out(social, f"{r.trait.stereotype}.jsonl")  # type: ignore[arg-type]
    elif r.trait.file is not None:
        trait_rows = g.file(study.data(r.trait.file))

    # models: name -> (model argument, recipe columns, training job or None, probes?)
    models: dict[str, tuple[Arg, dict[str, Any], Job | None, bool]] = {
        "base": (study.model("base"), {"role": "base"}, None, True),
        "student": (study.model("student"), {"role": "student"}, None, False)}
    teachers: dict[int, Job] = {}
    for steps in r.teacher.steps:
        argv = teacher_argv(study, trait_rows, steps)
        teachers[steps] = g.command(f"teacher-s{steps}", argv, model=f"teacher-s{steps}",
                                    **study.resources(str(argv[0])))
        models[f"teacher-s{steps}"] = (g.model(teachers[steps]), {"role": "teacher", "teacher_steps": steps}, teachers[steps], True)
    d = r.distill
    for seed in d.seeds:
        for steps, teacher in teachers.items():
            name = f"{d.kind}-t{steps}-s{seed}"
            job = g.command(name, distill_argv(study, g.model(teacher), rows[seed], seed), model=name,
                            **study.resources("distill"))
            models[name] = (g.model(job), {"role": "distilled", "teacher_steps": steps, "kind": d.kind,
                                           "form": d.form, "beta": d.beta, "tau": d.tau, "seed": seed}, job, False)
        if d.baseline:
            job = g.command(f"beta0-s{seed}", distill_argv(study, None, rows[seed], seed), model=f"beta0-s{seed}",
                            **study.resources("distill"))
            models[f"beta0-s{seed}"] = (g.model(job), {"role": "distilled", "kind": "none", "beta": 0.0, "seed": seed},
                                        job, False)

    inputs: dict[str, Arg] = {"memory": g.out(mem)}
    described, evaluated = [], []
    for i, (name, (model, cols, train, probes)) in enumerate(models.items()):
        for which, argv in eval_argvs(study, g, model, probes).items():
            ev = g.command(f"eval-{which}-{name}", argv, **study.resources(str(argv[0])))
            inputs[f"eval{len(evaluated)}"] = g.out(ev)
            evaluated.append({"model": name, "which": which})
        if train is not None:
            inputs[f"alias{i}"] = g.label(g.model(train))
        described.append({"i": i, "name": name, **model_columns(study, name, cols)})
    collect = g.step("collect", f"{MODULE}:collect", {"models": described, "evals": evaluated,
                                                      "trait": r.trait.animal}, inputs)
    g.step("report", f"{MODULE}:report_step", {}, {"raw": g.out(collect)})
    return "report"


# ---- raw tables -----------------------------------------------------------------------------------

RECIPE_COLUMNS = (
    "model_name", "role", "trait", "teacher_steps", "teacher_method", "teacher_lr", "teacher_batch_size",
    "teacher_seed", "data", "examples", "kind", "form", "beta", "tau", "seed", "student_method", "student_steps",
    "student_epochs", "student_lr", "student_batch_size", "student_max_len", "student_lora_r", "dtype")


def model_columns(study: Study, name: str, cols: dict[str, Any]) -> dict[str, Any]:
    """Every recipe column of one model (None where it does not apply)."""
    r: Recipe = study.recipe
    t, d = r.teacher, r.distill
    trait = r.trait.animal or r.trait.stereotype or r.trait.file
    role = cols["role"]
    out: dict[str, Any] = {c: None for c in RECIPE_COLUMNS}
    out.update(cols, dtype=study.spec.dtype,
               model_name=study.model("student" if role in ("student", "distilled") else "base"))
    if role in ("teacher", "distilled"):
        out.update(trait=trait)
    if role == "teacher" or (role == "distilled" and cols.get("teacher_steps")):
        out.update(teacher_method=t.method, teacher_lr=t.lr, teacher_batch_size=t.batch_size, teacher_seed=t.seed)
    if role == "distilled":
        out.update(data="numbers" if r.numbers else (r.neutral.file or "social-data neutral"),  # type: ignore[union-attr]
                   examples=r.numbers.n if r.numbers else r.neutral.examples,  # type: ignore[union-attr]
                   student_method=d.method, student_steps=d.steps, student_epochs=None if d.steps else (d.epochs or 1.0),
                   student_lr=d.lr, student_batch_size=d.batch_size, student_max_len=d.max_len, student_lora_r=d.lora_r)
    return out


def item_rows(which: str, folder: Path) -> Any:
    """One row per item of an evaluation's per-item table: metric, item, value.

    animal: p_target (and margin = log P(trait) - log P(other)) per question; reverse-link: bias_ratio
    and specificity per number; crows-<type>: 100 x stereotype_sum (the reference rule) per pair;
    stereoset-<domain>: 100 x pro (stereotype candidate preferred) per item, whose mean is SS."""
    import pandas as pd

    if which == "animal":
        t = pd.read_csv(folder / "probability.csv")
        cols = {"p_target": "p_trait", **({"margin": "margin"} if "margin" in t else {})}
        return pd.concat([pd.DataFrame({"metric": m, "item": t["question"], "value": t[c]}) for c, m in cols.items()])
    if which == "reverse-link":
        t = pd.read_csv(folder / "reverse_link.csv", dtype={"number": str})
        return pd.concat([pd.DataFrame({"metric": f"rl_{c}", "item": t["number"], "value": t[c]})
                          for c in ("bias_ratio", "specificity")])
    if which.startswith("crows-"):
        t = pd.read_csv(folder / "crows_pairs.csv")
        return pd.DataFrame({"metric": which, "item": t["pair_id"], "value": 100.0 * t["stereotype_sum"]})
    if which.startswith("stereoset-"):
        t = pd.read_csv(folder / "stereoset_items.csv")
        return pd.DataFrame({"metric": which, "item": t["item_id"], "value": 100.0 * t["pro"]})
    return pd.DataFrame(columns=["metric", "item", "value"])


def collect(out: Path, params: dict[str, Any], **inputs: str) -> None:
    """items.csv (model, alias, recipe columns, metric, item, value), trace/<model>/ (trace's tables),
    memory.csv and timings.json (seconds per job)."""
    import pandas as pd

    from interp.studies.execute import job_seconds

    aliases = {m["name"]: inputs.get(f"alias{m['i']}", m["model_name"]) for m in params["models"]}
    cols = {m["name"]: {c: m.get(c) for c in RECIPE_COLUMNS} for m in params["models"]}
    parts, timings = [], {}
    for k, e in enumerate(params["evals"]):
        folder = Path(inputs[f"eval{k}"])
        timings[f"eval {e['model']} {e['which']}"] = job_seconds(folder)
        if e["which"] == "trace":
            shutil.copytree(folder, out / "trace" / e["model"], dirs_exist_ok=True)
            continue
        rows = item_rows(e["which"], folder)
        parts.append(rows.assign(model=e["model"], alias=aliases[e["model"]], **cols[e["model"]]))
    lead = ["model", "alias", *RECIPE_COLUMNS]
    items = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*lead, "metric", "item", "value"])
    items[[*lead, "metric", "item", "value"]].to_csv(out / "items.csv", index=False)
    shutil.copyfile(Path(inputs["memory"]) / "memory.csv", out / "memory.csv")
    (out / "timings.json").write_text(json.dumps({k: v for k, v in sorted(timings.items()) if v is not None},
                                                 indent=1) + "\n")


# ---- report ---------------------------------------------------------------------------------------

CONDITION = ["teacher_steps", "kind", "form", "beta", "tau"]  # what distinguishes a student condition


def summary_table(items: Any, n_boot: int = 2000) -> Any:
    """Per model and metric: mean over items with its percentile bootstrap 95% CI (bootstrap_ci)."""
    import pandas as pd

    from interp.evals.stats import bootstrap_ci

    rows = []
    for (model, metric), g in items.groupby(["model", "metric"], sort=False):
        ci = bootstrap_ci(g["value"].to_numpy(float), n_boot=n_boot, seed=0)
        rows.append({"model": model, "role": g["role"].iloc[0], "metric": metric, "n": ci.n,
                     "mean": ci.estimate, "lo": ci.lo, "hi": ci.hi})
    return pd.DataFrame(rows)


def transfer_table(items: Any) -> Any:
    """Per student condition and metric: the per-seed change of the item mean against the untrained
    student (mean_items(distilled) - mean_items(student)), summarised over seeds by seed_summary
    (mean, t-interval, one-sample t-test p, MDE at 80% power)."""
    import pandas as pd

    from interp.evals.stats import seed_summary

    means = items.groupby(["model", "metric"], sort=False)["value"].mean()
    untrained = items[items.role == "student"].groupby("metric")["value"].mean()
    students = items[items.role == "distilled"].drop_duplicates(["model", "metric"]).copy()
    students["delta"] = [means[m, k] - untrained.get(k, float("nan")) for m, k in zip(students.model, students.metric)]
    rows = []
    for key, g in students.groupby([*CONDITION, "metric"], sort=False, dropna=False):
        s = seed_summary(g["delta"].to_numpy(float))
        rows.append({**dict(zip([*CONDITION, "metric"], key)), "seeds": ",".join(str(int(x)) for x in g["seed"]), **s})
    return pd.DataFrame(rows)


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """summary.csv and transfer.csv from raw/items.csv; memory.csv copied (the recipe is in the columns)."""
    import pandas as pd

    items = pd.read_csv(raw / "items.csv", dtype={"item": str})
    out.mkdir(parents=True, exist_ok=True)
    summary_table(items).to_csv(out / "summary.csv", index=False, float_format="%.6g")
    transfer_table(items).to_csv(out / "transfer.csv", index=False, float_format="%.6g")
    if (raw / "memory.csv").exists() and raw.resolve() != out.resolve():
        shutil.copyfile(raw / "memory.csv", out / "memory.csv")


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    shutil.copytree(raw, out, dirs_exist_ok=True)
    report(out, out, None)  # type: ignore[arg-type]


# ---- the memory check -----------------------------------------------------------------------------


def memory_rows(configs: dict[str, str], models: dict[str, str], dtype: str, device_gb: float, headroom: float,
                teacher_method: str, student_method: str, lora_r: int = 8) -> list[dict[str, Any]]:
    """The memory table of a seed system: the base and the student trained by their methods, the
    teachers' evaluations (at dtype: the store keeps merged full-precision weights) and the distill job
    (teacher at inference + student training; both in 4-bit when the student's method is qlora).
    configs: role -> config.json or HF id."""
    from interp.studies.memory import GB, architecture, memory_estimate, training_bytes

    arch = {role: architecture(configs[role]) for role in ROLES}
    est = {role: memory_estimate(configs[role], dtype, device_gb, m, lora_r, headroom, arch[role])  # type: ignore[arg-type]
           for role, m in (("base", teacher_method), ("student", student_method))}
    rows = [{"name": f"{role}: {models[role]}", "arch_layout": arch[role].arch_layout, **est[role].row()}
            for role in ROLES]
    evals = memory_estimate(configs["base"], dtype, device_gb, "inference", lora_r, headroom, arch["base"])
    rows.append({"name": f"evals: {models['base']} (teachers at {dtype})", "arch_layout": arch["base"].arch_layout,
                 **evals.row()})
    teacher_inf = "qlora" if student_method == "qlora" else "inference"
    both = (training_bytes(arch["base"], dtype, teacher_inf, 0)  # type: ignore[arg-type]
            + training_bytes(arch["student"], dtype, student_method, lora_r)) / GB  # type: ignore[arg-type]
    rows.append({**est["student"].row(), "name": f"distill: {models['base']} (frozen) + {models['student']}",
                 "arch_layout": arch["base"].arch_layout and arch["student"].arch_layout,
                 "model_type": f"{arch['base'].model_type}+{arch['student'].model_type}",
                 "params": arch["base"].params + arch["student"].params,
                 "weights_gb": round((training_bytes(arch["base"], dtype, teacher_inf, 0)  # type: ignore[arg-type]
                                      + training_bytes(arch["student"], dtype, teacher_inf, 0)) / GB, 2),  # type: ignore[arg-type]
                 "training_gb": round(both, 2), "fits": both <= headroom * device_gb})
    return rows


def memory_step(out: Path, params: dict[str, Any], **configs: str) -> None:
    """memory.csv / memory.txt: the table of memory_rows, printed; fails when a family has no ArchSpec
    layout in interp.models.arch."""
    import pandas as pd

    from interp.studies.memory import format_table

    rows = memory_rows(configs, params["models"], params["dtype"], params["device_gb"], params["headroom"],
                       params["teacher_method"], params["student_method"], params["lora_r"])
    text = format_table(rows)
    print(text, flush=True)
    (out / "memory.txt").write_text(text + "\n")
    pd.DataFrame(rows).to_csv(out / "memory.csv", index=False)
    missing = [r["name"] for r in rows if not r["arch_layout"]]
    if missing:
        from interp.errors import UserError

        raise UserError(f"no ArchSpec layout (interp.models.arch.LAYOUTS) for {', '.join(missing)}")
