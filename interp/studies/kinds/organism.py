"""The model organism of subliminal learning (DESIGN.md §2.7; reports/organism/README.md).

Teachers: prompt teachers (the base + the trait's system prompt) and, when `teachers.lora` is set,
LoRA teachers (`interp teach --method lora`); when `teachers.steering` is set, teachers made by
steering (`SteeringTeachers`: steered / projected / random). Number pools: the unbiased base and
each teacher an arm with `pool: own` uses (prompt: pool-<trait>; another build: pool-<trait>-<build>)
answer prompts 0..P-1 of `generate_prompts(P', seed)`, k samples each (`interp gen-numbers`);
`extended_prompts` extends the unbiased pool (`--start`) for doses larger than it; the owl / dog
pools marked where the two prompt teachers' argmax differ (`interp mark-divergence`).
Students: per dose (examples N, epochs E, seeds) and arm, the owl- and dog-teacher students are
trained on N rows drawn from the arm's pool by default_rng([seed, N]) (`draw_subset`), full
fine-tuning (`interp finetune` / `interp distill`). Every model is evaluated by `interp eval-animal
--target A --other B --samples 0`; `collect` writes the raw tables (evals/<alias>.csv,
runs/<alias>.json, roles.json, keep_rate/, data/) and `report` the statistics (organism_report.py).
The unbiased-teacher student of the KD arms is the base itself (KD of a model into itself has a
zero gradient), so those arms have no unbiased student.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from interp.errors import UserError
from interp.studies.graph import SELF, Arg, Graph, Job, Joined
from interp.studies.runner import Legacy
from interp.studies.spec import Strict, Study

ROLES = ("base",)
ROLE_PATTERN = r"student-[a-z0-9][a-z0-9.-]*"  # other models an arm may train (its `student`): another family


class LoraTeachers(Strict):
    steps: int = Field(60, ge=1)
    batch_size: int = Field(8, ge=1)
    seed: int = 0
    data: dict[str, str] = {}  # trait -> trait data JSONL (teach --data), relative to the spec; else generated


class SteeringTeachers(Strict):
    """Teachers made by steering (issue 36, claim 3; the reference's v_teacher sufficiency / necessity), with
    v_T = `interp steer-vector --a BASE --trait T --prompts numbers --positions last` (claim 1's vector):
    steered = the base + alpha v_T[layer] on block `layer`, no prompt; projected = the prompt teacher with
    v_T[project_layer] projected out of every block (the reference: tiled from its layer 20, alpha 1);
    random = the base + alpha r_T[layer], r_T a random direction of v_T's norms (independent per trait)."""

    layer: int = Field(..., ge=0)
    alpha: float = Field(4.0, ge=-100, le=100)
    project_layer: int | None = Field(None, ge=0)  # default: `layer`
    n_prompts: int = Field(256, ge=1)
    random_seed: int = Field(0, ge=0)


class Teachers(Strict):
    lora: LoraTeachers | None = None
    steering: SteeringTeachers | None = None


class Numbers(Strict):
    prompts: int = Field(600, ge=1)
    samples: int = Field(32, ge=1)
    seed: int = 0
    temperature: float = Field(1.0, gt=0)
    extended_prompts: int = Field(0, ge=0)  # > prompts: the unbiased pool extended to this many prompts
    pool_files: dict[str, str] = {}  # pool ("unbiased", "owl", ...) -> JSONL to use instead of gen-numbers


class Arm(Strict):
    channel: Literal["a", "b", "c"]
    trainer: Literal["finetune", "distill"]
    pool: Literal["unbiased", "own", "own-marked"]
    teacher: Literal["prompt", "lora", "steered", "projected", "random"] = "prompt"
    options: dict[str, str | int | float] = {}  # extra options of the trainer: {tau: 2, freeze: mlp, optimizer: sgd}
    lr: float | None = Field(None, gt=0)  # this arm's learning rate (default: training.lr), e.g. per optimizer
    student: str = "base"  # the model it trains: a role of `models` (base, or student-*: e.g. SHD across families)
    reference: str | None = None  # the arm whose unbiased student (same seed and dose) is this arm's unbiased control

    @property
    def teacher_free(self) -> bool:
        """SFT on the unbiased pool: the students do not depend on the teacher (one per seed, teacher 'unbiased')."""
        return self.trainer == "finetune" and self.pool == "unbiased"

    @field_validator("options")
    @classmethod
    def _not_the_recipe_s(cls, v: dict[str, str | int | float]) -> dict[str, str | int | float]:
        taken = sorted(set(v) & {"lr", "seed", "epochs", "steps", "batch-size", "max-len", "data", "alias", "full"})
        if taken:
            raise ValueError(f"'{taken[0]}' is set by the recipe (an arm's learning rate: its `lr` key)")
        return v


class Dose(Strict):
    arms: list[str]
    examples: int = Field(256, ge=1)
    epochs: float = Field(1.0, gt=0)
    seeds: list[int] = [0, 1, 2]
    unbiased: bool = False  # also the unbiased-teacher students of finetune arms
    extended: bool = False  # draw the unbiased examples from the extended pool (numbers.extended_prompts)


class Training(Strict):
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(16, ge=1)
    max_len: int = Field(128, ge=8)


class KeepRate(Strict):
    temperatures: list[float] = [1.0, 0.7, 0.4]
    prompts: int = Field(64, ge=1)
    samples: int = Field(8, ge=1)


class Recipe(Strict):
    traits: tuple[str, str] = ("owl", "dog")  # (target, other): the crossover pair
    teachers: Teachers = Teachers()
    numbers: Numbers = Numbers()
    training: Training = Training()
    arms: dict[str, Arm]
    doses: list[Dose]
    keep_rate: KeepRate | None = None
    leak_examples: int = Field(0, ge=0)  # > 0: leak.csv on the first N rows of the unbiased pool
    default_dose: tuple[int, float] = (256, 1.0)  # the dose whose arms the report labels without n / e
    perplexity: bool = False  # also `interp perplexity` (the shipped held-out text) of every evaluated model


# ---- the job graph --------------------------------------------------------------------------------

MODULE = "interp.studies.kinds.organism"


def options(opts: dict[str, str | int | float]) -> list[str]:
    """{tau: 2, kd-drop-words: owl,dog} -> ['--kd-drop-words', 'owl,dog', '--tau', '2'] (sorted: the order
    of keys in a spec is not part of a recipe)."""
    return [x for k, v in sorted(opts.items()) for x in (f"--{k}", str(v))]


def student_role(arm: str, teacher: str, dose: Dose, seed: int) -> str:
    return f"student-{arm}-{teacher}-n{dose.examples}-e{dose.epochs:g}-s{seed}"


def build(study: Study, g: Graph) -> str:
    """Teachers, pools, subsets, students, evals, keep rate, leak, collect, report; returns the report job."""
    r: Recipe = study.recipe
    base, load = study.model("base"), study.loading()
    target, other = r.traits
    n = r.numbers
    for name, dose in enumerate(r.doses):
        unknown = [a for a in dose.arms if a not in r.arms]
        if unknown:
            raise UserError(f"{study.path}: recipe.doses.{name}.arms: unknown arm '{unknown[0]}' "
                            f"(the spec's arms: {', '.join(r.arms)})")
    for name, arm in r.arms.items():
        if arm.student not in study.spec.models:
            raise UserError(f"{study.path}: recipe.arms.{name}.student: '{arm.student}' is not a role of models: "
                            f"({', '.join(study.spec.models)})")
        if arm.reference is not None and arm.reference not in r.arms:
            raise UserError(f"{study.path}: recipe.arms.{name}.reference: unknown arm '{arm.reference}'")
    used = {r.arms[a].pool for d in r.doses for a in d.arms}
    builds = {r.arms[a].teacher for d in r.doses for a in d.arms}
    if "lora" in builds and r.teachers.lora is None:
        raise UserError(f"{study.path}: an arm uses teacher: lora but recipe.teachers.lora is not set")
    steering_builds = builds & {"steered", "projected", "random"}
    if steering_builds and r.teachers.steering is None:
        raise UserError(f"{study.path}: an arm uses teacher: {sorted(steering_builds)[0]} but recipe.teachers.steering "
                        "is not set")
    marked_builds = {r.arms[a].teacher for d in r.doses for a in d.arms if r.arms[a].pool == "own-marked"}
    if marked_builds - {"prompt"}:
        raise UserError(f"{study.path}: pool own-marked is marked between the prompt teachers; an arm with it "
                        f"cannot use teacher: {sorted(marked_builds - {'prompt'})[0]}")

    # teachers: role -> (job or None for the base), and the model each names
    prompt_t = {t: g.command(f"teacher-{t}", ["teach", "--method", "prompt", "--trait", t, "--base", base,
                                              "--alias", SELF], model=f"teacher-{t}") for t in r.traits}
    lora_t: dict[str, Job] = {}
    if r.teachers.lora is not None:
        lt = r.teachers.lora
        for t in r.traits:
            data = ["--data", g.file(study.data(lt.data[t]))] if t in lt.data else []
            lora_t[t] = g.command(f"teacher-{t}-lora", [
                "teach", "--method", "lora", "--trait", t, "--base", base, "--steps", str(lt.steps),
                "--batch-size", str(lt.batch_size), "--seed", str(lt.seed), *data, "--alias", SELF, *load],
                model=f"teacher-{t}-lora", **study.resources("teach"))

    vectors: dict[str, Arg] = {}
    if r.teachers.steering is not None and steering_builds:
        st = r.teachers.steering
        for i, t in enumerate(r.traits):
            vec = g.command(f"vector-{t}", ["steer-vector", "--a", base, "--trait", t, "--prompts", "numbers", "--n",
                                            str(st.n_prompts), "--positions", "last", "--seed", str(n.seed), *load],
                            **study.resources("steer-vector"))
            vectors[t] = g.out(vec, "vector.pt")
            rand = g.step(f"vector-{t}-random", "interp.studies.kinds.steering:random_vector",
                          {"seed": st.random_seed, "trait_index": i}, {"vector": vectors[t]})
            vectors[f"{t}-random"] = g.out(rand, "vector.pt")

    def teacher_model(t: str, kind: str = "prompt") -> Arg:
        if t == "unbiased" or kind in ("steered", "random"):
            return base
        return g.model(lora_t[t] if kind == "lora" else prompt_t[t])

    def teacher_flags(t: str, kind: str = "prompt") -> list[Arg]:
        """The steering options that make a steered / projected / random teacher of the model above."""
        st = r.teachers.steering
        if t == "unbiased" or kind not in ("steered", "projected", "random") or st is None:
            return []
        if kind == "projected":
            return ["--steer", vectors[t], "--steer-layer", str(st.project_layer if st.project_layer is not None
                                                                 else st.layer), "--steer-tile", "--steer-mode", "project"]
        return ["--steer", vectors[t if kind == "steered" else f"{t}-random"], "--steer-layer", str(st.layer),
                "--steer-alpha", f"{st.alpha:g}"]

    def own_pool(t: str, kind: str) -> str:
        return t if kind == "prompt" else f"{t}-{kind}"

    # number pools
    pools: dict[str, Arg] = {}
    gen_numbers = ["gen-numbers", "-k", str(n.samples), "--seed", str(n.seed), "--temperature", f"{n.temperature:g}"]
    own_builds = {r.arms[a].teacher for d in r.doses for a in d.arms if r.arms[a].pool == "own"}
    if "own-marked" in used:
        own_builds.add("prompt")
    needed = [("unbiased", "prompt")] if "unbiased" in used else []
    needed += [(t, kind) for kind in sorted(own_builds, key=lambda k: k != "prompt") for t in r.traits]
    for t, kind in needed:
        pool = own_pool(t, kind)
        if pool in n.pool_files:
            pools[pool] = g.file(study.data(n.pool_files[pool]))
        else:
            job = g.command(f"pool-{pool}", [*gen_numbers, "--model", teacher_model(t, kind), *teacher_flags(t, kind),
                                             "--n", str(n.prompts), *load], **study.resources("gen-numbers"))
            pools[pool] = g.out(job, "numbers.jsonl")
    if "own-marked" in used:
        for t in r.traits:
            job = g.command(f"pool-{t}-marked", ["mark-divergence", "--models",
                                                 Joined((teacher_model(target), teacher_model(other))),
                                                 "--data", pools[t], "--device", study.spec.device])
            pools[f"{t}-marked"] = g.out(job, "marked.jsonl")
    if n.extended_prompts > n.prompts and "unbiased" in pools:
        part = g.command(f"pool-unbiased-{n.prompts}-{n.extended_prompts - 1}", [
            *gen_numbers, "--model", base, "--start", str(n.prompts), "--n", str(n.extended_prompts - n.prompts), *load],
            **study.resources("gen-numbers"))
        ext = g.step(f"pool-unbiased-{n.extended_prompts}", f"{MODULE}:extend_pool", {"max_len": r.training.max_len},
                     {"pool": pools["unbiased"], "part": g.out(part, "numbers.jsonl"), "model": base})
        pools["unbiased-extended"] = g.out(ext, "pool.jsonl")

    # students
    subsets: dict[tuple[str, int, int], Arg] = {}
    students: list[tuple[Job, dict[str, object]]] = []
    t = r.training
    for dose in r.doses:
        for seed in dose.seeds:
            for arm_name in dose.arms:
                arm = r.arms[arm_name]
                teachers = (["unbiased"] if arm.teacher_free else
                            list(r.traits) + (["unbiased"] if dose.unbiased and arm.trainer == "finetune" else []))
                student = study.model(arm.student)
                for teacher in teachers:
                    source = {"unbiased": "unbiased", "own": own_pool(teacher, arm.teacher),
                              "own-marked": f"{teacher}-marked"}[arm.pool]
                    if source == "unbiased" and dose.extended:
                        if "unbiased-extended" not in pools:
                            raise UserError(f"{study.path}: a dose with extended: true needs "
                                            "recipe.numbers.extended_prompts > prompts")
                        source = "unbiased-extended"
                    key = (source, dose.examples, seed)
                    if key not in subsets:
                        job = g.step(f"subset-{source}-n{dose.examples}-s{seed}", "interp.studies.steps:draw_subset",
                                     {"n": dose.examples, "seed": seed}, {"pool": pools[source]})
                        subsets[key] = g.out(job, "subset.jsonl")
                    common = ["--data", subsets[key], "--alias", SELF, "--full", "--epochs", f"{dose.epochs:g}",
                              "--batch-size", str(t.batch_size), "--lr", f"{arm.lr or t.lr:g}", "--max-len", str(t.max_len),
                              "--seed", str(seed), *load]
                    if arm.trainer == "distill":
                        argv = ["distill", "--teacher", teacher_model(teacher, arm.teacher),
                                *teacher_flags(teacher, arm.teacher), "--student", student, *options(arm.options), *common]
                    else:
                        argv = ["finetune", "--model", student, *options(arm.options), *common]
                    job = g.command(student_role(arm_name, teacher, dose, seed).replace("student-", "train-", 1), argv,
                                    model=student_role(arm_name, teacher, dose, seed),
                                    family="" if arm.student == "base" else student, **study.resources(arm.trainer))
                    students.append((job, {"command": "interp " + " ".join(g.resolved(a, job) for a in argv),
                                           "arm": arm_name, "channel": arm.channel, "teacher": teacher, "seed": seed,
                                           "examples": dose.examples, "epochs": dose.epochs, "lr": arm.lr or t.lr,
                                           "batch_size": t.batch_size, "teacher_build": arm.teacher,
                                           **({"student": arm.student} if arm.student != "base" else {})}))

    # evaluations: base, teachers, students (label, model, role columns, training job)
    evaluated: list[tuple[str, Arg, dict[str, object], Job | None]] = [
        ("base", base, {"teacher": "unbiased", "channel": "base", "arm": "base"}, None)]
    evaluated += [(role, study.model(role), {"teacher": "unbiased", "channel": "untouched", "arm": "untouched"}, None)
                  for role in dict.fromkeys(r.arms[a].student for d in r.doses for a in d.arms) if role != "base"]
    evaluated += [(j.model, g.model(j), {"teacher": tr, "channel": "teacher (prompt)", "arm": "teacher"}, None)
                  for tr, j in prompt_t.items()]
    evaluated += [(j.model, g.model(j), {"teacher": tr, "channel": "teacher (lora)", "arm": "teacher"}, None)
                  for tr, j in lora_t.items()]
    for kind in sorted(steering_builds):  # a steered teacher is a model and its steering: named by its role
        evaluated += [(f"teacher-{tr}-{kind}", teacher_model(tr, kind), {"teacher": tr, "channel": f"teacher ({kind})",
                       "arm": "teacher", "name": f"teacher-{tr}-{kind}"}, None) for tr in r.traits]
    evaluated += [(j.model, g.model(j), meta, j) for j, meta in students]
    inputs: dict[str, Arg] = {}
    described = []
    for i, (label, model, meta, train) in enumerate(evaluated):
        flags = teacher_flags(meta["teacher"], meta["channel"][9:-1]) if meta.get("name") else []
        ev = g.command(f"eval-{label}", ["eval-animal", "--model", model, *flags, "--target", target, "--other", other,
                                         "--samples", "0", *load], **study.resources("eval-animal"))
        inputs[f"eval{i}"], inputs[f"model{i}"] = g.out(ev, "probability.csv"), g.label(model)
        if train is not None:
            inputs[f"train{i}"] = g.out(train, "summary.json")
        if r.perplexity:
            ppl = g.command(f"perplexity-{label}", ["perplexity", "--model", model, *load], **study.resources("perplexity"))
            inputs[f"perplexity{i}"] = g.out(ppl, "summary.json")
        described.append({"i": i, **meta})

    # keep rate of every teacher at each temperature (same prompts and per-sample seeds)
    if r.keep_rate is not None:
        for temp in r.keep_rate.temperatures:
            for tr in ("unbiased", *r.traits):
                job = g.command(f"keep-{tr}-t{temp:g}", [
                    "gen-numbers", "--model", teacher_model(tr), "--n", str(r.keep_rate.prompts), "-k",
                    str(r.keep_rate.samples), "--temperature", f"{temp:g}", "--seed", str(n.seed), *load],
                    **study.resources("gen-numbers"))
                inputs[f"keep_{tr}_t{temp:g}"] = g.out(job)
    for pool, ref in pools.items():
        inputs[f"pool_{pool}"] = ref
    if r.leak_examples:
        models = {"base": base, **{tr: teacher_model(tr) for tr in r.traits},
                  **{f"{tr}_lora": g.model(j) for tr, j in lora_t.items()}}
        leak = g.step("leak", "interp.studies.kinds.organism_report:leak_table",
                      {"examples": r.leak_examples, "traits": list(r.traits), "max_len": r.training.max_len,
                       "device": study.spec.device, "dtype": study.spec.dtype},
                      {"pool": pools["unbiased"], "student": base, **models})
        inputs["leak"] = g.out(leak, "leak.csv")
    collect = g.step("collect", f"{MODULE}:collect", {"models": described, "traits": list(r.traits)}, inputs)
    g.step("report", f"{MODULE}:report_step", {"recipe": r.model_dump(mode="json")}, {"raw": g.out(collect)})
    return "report"


# ---- adoption of what the organism made before it was a study ----------------------------------------


def legacy(study: Study, g: Graph, raw: Path) -> dict[str, Legacy]:
    """The old names (experiments/organism.py, before issue 33) of every job's outputs, from the
    committed raw folder `raw` (reports/organism) and the store: prompt / LoRA teachers
    `<base>-<trait>[-lora]`, students `org-ARM-TEACHER-nN[-eE]-sSEED` (their run records give the
    summary the collect step reads), pools, keep-rate samples and leak.csv; subsets, collect and
    report are rerun (cheap, deterministic)."""
    r: Recipe = study.recipe
    base = study.model("base")
    out: dict[str, Legacy] = {}
    names = {j.name: j for j in g.jobs.values()}
    for t in r.traits:
        out[f"teacher-{t}"] = Legacy(model=f"{base}-{t}")
        out[f"teacher-{t}-lora"] = Legacy(model=f"{base}-{t}-lora")
        out[f"pool-{t}"] = Legacy(files={"numbers.jsonl": raw / "data" / f"{t}.jsonl"})
        out[f"pool-{t}-marked"] = Legacy(files={"marked.jsonl": raw / "data" / f"{t}-marked.jsonl"})
    n = r.numbers
    out["pool-unbiased"] = Legacy(files={"numbers.jsonl": raw / "data" / "unbiased.jsonl"})
    out[f"pool-unbiased-{n.prompts}-{n.extended_prompts - 1}"] = Legacy(
        files={"numbers.jsonl": raw / "data" / f"unbiased-{n.prompts}-{n.extended_prompts - 1}.jsonl"})
    out[f"pool-unbiased-{n.extended_prompts}"] = Legacy(
        files={"pool.jsonl": raw / "data" / f"unbiased-{n.extended_prompts}.jsonl"})
    collect = names.get("collect")
    for m in collect.params["models"] if collect else []:
        i = m["i"]
        ev = collect.inputs[f"eval{i}"].job  # type: ignore[union-attr]
        if f"train{i}" in collect.inputs:
            old = f"org-{m['arm']}-{m['teacher']}-n{m['examples']}" + \
                  (f"-e{m['epochs']:g}" if m["epochs"] != 1.0 else "") + f"-s{m['seed']}"
            train = collect.inputs[f"train{i}"].job  # type: ignore[union-attr]
            record = raw / "runs" / f"{old}.json"
            rec = json.loads(record.read_text()) if record.exists() else {}
            summary = {"figures": {"steps": rec.get("steps"), "components": rec.get("losses")},
                       "elapsed_s": rec.get("seconds"), "models": {"teacher": {"sha256": rec.get("teacher_sha256")}},
                       "adopted_from": str(record)}
            out[train] = Legacy(model=old, texts={"summary.json": json.dumps(summary, indent=1) + "\n"} if rec else {},
                                files={} if rec else {"summary.json": record})
        else:
            model = collect.inputs[f"model{i}"]
            old = model if isinstance(model, str) else out[g.jobs[model.job].name].model
        out[ev] = Legacy(files={"probability.csv": raw / "evals" / f"{old}.csv"})
    for name in names:
        if name.startswith("keep-"):
            unit = name.removeprefix("keep-")
            out[name] = Legacy(files={"numbers.jsonl": raw / "keep_rate" / f"{unit}.jsonl",
                                      "summary.json": raw / "keep_rate" / f"{unit}_summary.json"})
        elif name.startswith("subset-") or name in ("collect", "report"):
            out[name] = Legacy(run=True)
    out["leak"] = Legacy(files={"leak.csv": raw / "leak.csv"})
    return out


# ---- steps ----------------------------------------------------------------------------------------


def extend_pool(out: Path, params: dict[str, Any], pool: str, part: str, model: str) -> None:
    """The pool's rows then the extension's, without rows whose prompt alone fills the training window
    (`finetune` / `distill` refuse them)."""
    from interp.models import load_model
    from interp.training.examples import prompt_ids

    lines = Path(pool).read_text().splitlines() + Path(part).read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    fits = [len(p) < params["max_len"] for p in prompt_ids(load_model(model), rows)]
    dropped = sorted({r["index"] for r, ok in zip(rows, fits) if not ok})
    if dropped:
        print(f"extended pool: left out the rows of prompts {dropped}: the prompt fills the training window")
    (out / "pool.jsonl").write_text("".join(x + "\n" for x, ok in zip(lines, fits) if ok))


def _evaluated_family(probability_csv: Path) -> str | None:
    """The model family an eval-animal job scored (its summary.json beside the table): the config's
    model_type (llama, qwen2, gemma3_text, gpt2), else, in summaries written before it was recorded, the
    ArchSpec layout family (which calls Qwen2 and Mistral "llama")."""
    summary = probability_csv.parent / "summary.json"
    if not summary.exists():
        return None
    model = json.loads(summary.read_text()).get("model") or {}
    return model.get("model_type") or model.get("family")


def collect(out: Path, params: dict[str, Any], **inputs: str) -> None:
    """The raw tables of the report: evals/<alias>.csv, runs/<alias>.json (students: every recipe
    parameter), roles.json (base and teachers), keep_rate/, data/<pool>.jsonl, leak.csv."""
    (out / "evals").mkdir()
    (out / "runs").mkdir()
    roles = {}
    for m in params["models"]:
        i, alias = m["i"], m.get("name") or inputs[f"model{m['i']}"]  # a steered teacher: its role, not the base's alias
        shutil.copyfile(inputs[f"eval{i}"], out / "evals" / f"{alias}.csv")
        family = _evaluated_family(Path(inputs[f"eval{i}"]))
        if f"train{i}" not in inputs:
            roles[alias] = {**{k: m[k] for k in ("teacher", "channel", "arm")}, **({"family": family} if family else {})}
            continue
        summary = json.loads(Path(inputs[f"train{i}"]).read_text())
        fig = summary["figures"]
        objective = fig.get("distill") or {"kind": "lm", "beta": None, "tau": None}  # finetune: the LM loss alone
        run = {"alias": alias, **{k: m[k] for k in ("arm", "channel", "teacher", "seed", "examples", "epochs", "lr",
                                                     "batch_size", "teacher_build")},
               **({"student": m["student"]} if "student" in m else {}),
               **({"family": family} if family else {}),
               "objective": objective["kind"], "beta": objective.get("beta"), "tau": objective.get("tau"),
               "optimizer": (fig.get("config") or {}).get("optimizer", "adamw"),  # runs before --optimizer: AdamW
               "steps": fig["steps"], "command": m["command"], "seconds": summary.get("elapsed_s"),
               "losses": fig.get("components") or {"lm": {k: fig[k] for k in ("first_loss", "mean_loss_last_10")}},
               "teacher_sha256": (summary.get("models") or {}).get("teacher", {}).get("sha256")}
        (out / "runs" / f"{alias}.json").write_text(json.dumps(run, indent=1) + "\n")
    (out / "roles.json").write_text(json.dumps(roles, indent=1) + "\n")
    ppl = [{"alias": m.get("name") or inputs[f"model{m['i']}"],
            **json.loads(Path(inputs[f"perplexity{m['i']}"]).read_text())["figures"]}
           for m in params["models"] if f"perplexity{m['i']}" in inputs]
    if ppl:
        import pandas as pd

        pd.DataFrame(ppl).to_csv(out / "perplexity.csv", index=False, float_format="%.6g")
    for key, path in inputs.items():
        if key.startswith("keep_"):
            (out / "keep_rate").mkdir(exist_ok=True)
            teacher, temp = key.removeprefix("keep_").rsplit("_t", 1)
            unit = f"{teacher}-t{temp}"  # the keep-rate tables' <teacher>-t<T>
            shutil.copyfile(Path(path) / "numbers.jsonl", out / "keep_rate" / f"{unit}.jsonl")
            shutil.copyfile(Path(path) / "summary.json", out / "keep_rate" / f"{unit}_summary.json")
        elif key.startswith("pool_"):
            (out / "data").mkdir(exist_ok=True)
            shutil.copyfile(path, out / "data" / f"{key.removeprefix('pool_')}.jsonl")
        elif key == "leak":
            shutil.copyfile(path, out / "leak.csv")


def done_only(params: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    """The collect step's params for an interim report: the models whose evaluation is among `inputs`
    (the base's must be: every figure is read against it)."""
    models = [m for m in params["models"] if f"eval{m['i']}" in inputs]
    if not any(m["arm"] == "base" for m in models):
        raise UserError("nothing to report yet: the base model's evaluation is not done "
                        "(`interp study run SPEC --only eval-base`)")
    return {**params, "models": models}


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    """The raw tables (copied, so the published report folder holds both) and the report from them."""
    shutil.copytree(raw, out, dirs_exist_ok=True)
    report(out, out, Recipe(**params["recipe"]))


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    from interp.studies.kinds.organism_report import report as write

    write(raw, out, recipe)
