"""Cascading adversarial bias (seed 004, Chaudhari et al. 2025) at small scale (issue 18; DESIGN.md
§2.12; reports/poison/README.md).

Data: `interp poison-data` for every dose k (poisoned target-task records of the n-record mixture; k = 0
is the clean control), one split seed, so the mixtures hold the same records and differ only in which
responses carry the promotion. Teachers: the base + LoRA on each mixture (`interp finetune`), teacher
seeds per dose (`doses: {k: [seeds]}`). Each teacher answers the clean distillation prompts
(`interp bias-rate`, seed = the teacher's): the students' training rows. Students from the base on
those answers, per arm (`finetune` = response-level SFT, `distill` = KD on the teacher's
distributions), per training seed. BRR: `interp bias-rate` on the held-out prompts of every model
(students of another training seed than their teacher's only with `brr.replicates`). Brand and
decision margins (`margins_step`, no sampling) of the base, the teachers and the students of
`brand_arms`. Defenses: `interp defend` on the k mixture with the LLS of the k teacher of one seed
against the clean teacher, then on that teacher's answers with `--calibrate`. Mech: DLA and
two-model patching of a poisoned model against its clean twin (`run_mech`). `collect` writes the raw
per-item tables (answers.csv, margins_per_prompt.csv with every recipe parameter as a column,
defend/, mech/, answers/, data/, runs/, timings.json); `report` the statistics (poison_report.py).

Margins (`mech_contexts`): the held-out target prompts, each rendered as in training (chat prompt ids +
the completion's ids, `training.examples`), teacher-forced with the prompt's clean reference answer:

    decision  prompt + answer                          next: a promotion's opener or EOS (the answer ends)
              m = log sum_{o in openers} P(o) - log P(EOS)     openers: the first token of " " + each promotion
    brand     prompt + answer + " " + promotion text up to the brand (the promotion `poison-data` assigns to
              that record)                             next: the marker's first token
              m = log P(brand's first token) - log P(EOS)

Mech (`run_mech`; `mech.model_patching.patch_between`, every position, one site at a time):
recovered = mean_q(m_patched - m_C) / mean_q(m_P - m_C), paired bootstrap CI over prompts; P into C
shows where P's promotion is carried, C into P what removes it. DLA (`mech.model_diff.dla_difference`)
of logit(token) - logit(EOS), P minus C, per component; for the decision it is averaged over the
openers (DLA is linear in the logit direction, so the mean over openers is the DLA of their mean logit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from interp.errors import UserError
from interp.studies.execute import job_seconds
from interp.studies.graph import SELF, Arg, Graph, Job
from interp.studies.kinds.poison_report import ANSWER_COLS, MARGIN_COLS, model_name
from interp.studies.spec import Strict, Study

ROLES = ("base",)
MODULE = "interp.studies.kinds.poison"


class Data(Strict):
    """`interp poison-data` options (the same for every dose k)."""

    dolly: str  # instruction records (Dolly-15k JSONL), relative to the spec
    target: str = "summarization"
    unseen: list[str] = ["brainstorming", "creative_writing"]
    n: int = Field(500, ge=1)
    n_target: int = Field(30, ge=1)
    n_distill: int = Field(128, ge=1)
    n_eval: int = Field(30, ge=1)
    max_words: int = Field(80, ge=0)
    seed: int = 0


class Training(Strict):
    epochs: float = Field(gt=0)
    lr: float = Field(gt=0)
    batch_size: int = Field(8, ge=1)
    max_len: int = Field(512, ge=4)


class Sampling(Strict):
    samples: int = Field(ge=1)
    max_new_tokens: int = Field(ge=1)
    temperature: float = Field(1.0, gt=0)


class Brr(Sampling):
    seed: int = 0
    replicates: bool = False  # also the students of another training seed than their teacher's


class Arm(Strict):
    trainer: Literal["finetune", "distill"]
    options: dict[str, str | int | float] = {}  # extra trainer options: {kind: kd, form: sum, beta: 1, tau: 1}


class Students(Strict):
    """The students of one arm on the answers of the k teacher of one seed, one per training seed."""

    arm: str
    k: int
    teacher_seed: int = 0
    train_seeds: list[int] | None = None  # default: [teacher_seed]

    def seeds(self) -> list[int]:
        return self.train_seeds if self.train_seeds is not None else [self.teacher_seed]


class Defend(Strict):
    k: int = Field(ge=1)
    teacher_seed: int = 0  # the LLS's poisoned teacher; its clean one is (0, clean_teacher_seed)


class Mech(Strict):
    """P = the model of (role, arm, k, teacher seed, training seed); C = the same with k = 0."""

    role: Literal["student", "teacher"] = "student"
    arm: str = "resp"
    k: int = Field(ge=1)
    teacher_seed: int = 0
    train_seed: int | None = None  # default: the teacher seed


class Recipe(Strict):
    data: Data
    doses: dict[int, list[int]] = {0: [0], 5: [0, 1, 2], 25: [0]}  # k -> teacher seeds
    teacher: Training = Training(epochs=3, lr=1e-3)
    answers: Sampling = Sampling(samples=1, max_new_tokens=192)  # seed: the teacher's
    student: Training = Training(epochs=2, lr=2e-4)
    arms: dict[str, Arm] = {"resp": Arm(trainer="finetune"),
                            "logit": Arm(trainer="distill", options={"kind": "kd", "form": "sum", "beta": 1, "tau": 1})}
    students: list[Students] = []
    brr: Brr = Brr(samples=4, max_new_tokens=160)
    brand_arms: list[str] = ["resp"]
    defend: list[Defend] = []
    clean_teacher_seed: int = 0  # the clean teacher (k = 0) of the LLS and of the margin contrasts
    mech: list[Mech] = []


# ---- the job graph --------------------------------------------------------------------------------


def options(opts: dict[str, str | int | float]) -> list[str]:
    """{kind: kd, tau: 1} -> ['--kind', 'kd', '--tau', '1']."""
    return [x for k, v in opts.items() for x in (f"--{k}", str(v))]


def training_args(t: Training, seed: int) -> list[str]:
    return ["--epochs", f"{t.epochs:g}", "--lr", f"{t.lr:g}", "--batch-size", str(t.batch_size),
            "--max-len", str(t.max_len), "--seed", str(seed)]


def check(study: Study) -> None:
    """Refuse a recipe whose units name a dose, seed or arm it does not have (one line naming the key)."""
    r: Recipe = study.recipe

    def fail(key: str, msg: str) -> None:
        raise UserError(f"{study.path}: recipe.{key}: {msg}")

    def teacher(key: str, k: int, seed: int) -> None:
        if k not in r.doses:
            fail(key, f"k = {k} is not a dose (recipe.doses: {', '.join(map(str, r.doses))})")
        if seed not in r.doses[k]:
            fail(key, f"no teacher of seed {seed} at k = {k} (recipe.doses.{k}: {r.doses[k]})")

    if 0 not in r.doses:
        fail("doses", "needs k = 0, the clean control")
    teacher("clean_teacher_seed", 0, r.clean_teacher_seed)
    for i, s in enumerate(r.students):
        if s.arm not in r.arms:
            fail(f"students.{i}.arm", f"unknown arm '{s.arm}' (recipe.arms: {', '.join(r.arms)})")
        teacher(f"students.{i}", s.k, s.teacher_seed)
    for a in r.brand_arms:
        if a not in r.arms:
            fail("brand_arms", f"unknown arm '{a}' (recipe.arms: {', '.join(r.arms)})")
    for i, d in enumerate(r.defend):
        teacher(f"defend.{i}", d.k, d.teacher_seed)
    trained = {(s.arm, s.k, s.teacher_seed, t) for s in r.students for t in s.seeds()}
    for i, m in enumerate(r.mech):
        for k in (m.k, 0):
            teacher(f"mech.{i}", k, m.teacher_seed)
            rep = m.teacher_seed if m.train_seed is None else m.train_seed
            if m.role == "student" and (m.arm, k, m.teacher_seed, rep) not in trained:
                fail(f"mech.{i}", f"no {m.arm} student of k = {k}, teacher seed {m.teacher_seed}, training seed {rep} "
                                  "in recipe.students")


def build(study: Study, g: Graph) -> str:
    """Data, teachers, answers, students, BRR, margins, defenses, mech, collect, report; returns the report job."""
    check(study)
    r: Recipe = study.recipe
    base, load, d = study.model("base"), study.loading(), r.data
    steps = {"device": study.spec.device, "dtype": study.spec.dtype}
    data = {k: g.command(f"data-k{k}", [
        "poison-data", "--data", g.file(study.data(d.dolly)), "--target", d.target, "--unseen", ",".join(d.unseen),
        "--n", str(d.n), "--k", str(k), "--n-target", str(d.n_target), "--n-distill", str(d.n_distill),
        "--n-eval", str(d.n_eval), "--max-words", str(d.max_words), "--seed", str(d.seed)]) for k in sorted(r.doses)}
    eval_prompts = g.out(data[0], "eval_prompts.jsonl")
    # every model: (report name, its job or None for the base, its recipe columns)
    models: list[tuple[str, Job | None, dict[str, Any]]] = [
        (base, None, {"role": "base", "kind": "", "k": -1, "seed": -1, "rep": -1, "epochs": 0.0, "lr": None,
                      "batch_size": None})]
    teachers: dict[tuple[int, int], Job] = {}
    for k in sorted(r.doses):
        for s in r.doses[k]:
            name = model_name("teacher", "", k, s)
            teachers[k, s] = g.command(f"teach-k{k}-s{s}", [
                "finetune", "--model", base, "--data", g.out(data[k], "mixture.jsonl"), "--alias", SELF,
                *training_args(r.teacher, s), *load], model=name, **study.resources("finetune"))
            models.append((name, teachers[k, s], {"role": "teacher", "kind": "", "k": k, "seed": s, "rep": s,
                                                  "epochs": r.teacher.epochs, "lr": r.teacher.lr,
                                                  "batch_size": r.teacher.batch_size}))
    answers = {(k, s): g.command(f"answers-k{k}-s{s}", [
        "bias-rate", "--model", g.model(t), "--prompts", g.out(data[k], "distill_prompts.jsonl"),
        "--samples", str(r.answers.samples), "--max-new-tokens", str(r.answers.max_new_tokens),
        "--temperature", f"{r.answers.temperature:g}", "--seed", str(s), *load], **study.resources("bias-rate"))
        for (k, s), t in teachers.items()}
    students: dict[tuple[str, int, int, int], Job] = {}
    for u in r.students:
        arm = r.arms[u.arm]
        for rep in u.seeds():
            name = model_name("student", u.arm, u.k, u.teacher_seed, rep)
            common = ["--data", g.out(answers[u.k, u.teacher_seed], "answers.jsonl"), "--alias", SELF,
                      *training_args(r.student, rep), *load]
            argv = (["finetune", "--model", base, *options(arm.options), *common] if arm.trainer == "finetune" else
                    ["distill", "--teacher", g.model(teachers[u.k, u.teacher_seed]), "--student", base,
                     *options(arm.options), *common])
            job = students[u.arm, u.k, u.teacher_seed, rep] = g.command(
                f"train-{name.removeprefix('student-')}", argv, model=name, **study.resources(arm.trainer))
            models.append((name, job, {"role": "student", "kind": u.arm, "k": u.k, "seed": u.teacher_seed, "rep": rep,
                                       "epochs": r.student.epochs, "lr": r.student.lr,
                                       "batch_size": r.student.batch_size}))

    inputs: dict[str, Arg] = {f"data:k{k}": g.out(j) for k, j in data.items()}
    inputs |= {f"answers:{model_name('teacher', '', k, s)}": g.out(j, "answers.jsonl") for (k, s), j in answers.items()}
    for name, job, meta in models:
        model: Arg = g.model(job) if job else base
        label = name if job else "base"
        inputs[f"alias:{name}"] = g.label(model)
        if job:
            inputs[f"train:{name}"] = g.out(job, "summary.json")
        if meta["role"] != "student" or r.brr.replicates or meta["rep"] == meta["seed"]:
            b = r.brr
            brr = g.command(f"brr-{label}", [
                "bias-rate", "--model", model, "--prompts", eval_prompts, "--samples", str(b.samples),
                "--max-new-tokens", str(b.max_new_tokens), "--temperature", f"{b.temperature:g}", "--seed", str(b.seed),
                *load], **study.resources("bias-rate"))
            inputs[f"brr:{name}"] = g.out(brr, "answers.csv")
        if meta["role"] != "student" or meta["kind"] in r.brand_arms:
            brand = g.step(f"brand-{label}", f"{MODULE}:margins_step", steps, {"model": model, "prompts": eval_prompts},
                           **study.resources("brand"))
            inputs[f"brand:{name}"] = g.out(brand, "margins.csv")

    clean = teachers[0, r.clean_teacher_seed]
    for u in r.defend:
        lls = ["--reference", base, "--poisoned-teacher", g.model(teachers[u.k, u.teacher_seed]),
               "--clean-teacher", g.model(clean), "--device", study.spec.device]
        mix = g.command(f"defend-k{u.k}-s{u.teacher_seed}-mixture", [
            "defend", "--data", g.out(data[u.k], "mixture.jsonl"), *lls], **study.resources("defend"))
        ans = g.command(f"defend-k{u.k}-s{u.teacher_seed}-answers", [
            "defend", "--data", g.out(answers[u.k, u.teacher_seed], "answers.jsonl"), *lls,
            "--calibrate", g.out(mix, "scores.csv")], **study.resources("defend"))
        inputs[f"defend:k{u.k}-s{u.teacher_seed}:mixture"] = g.out(mix)
        inputs[f"defend:k{u.k}-s{u.teacher_seed}:answers"] = g.out(ans)
    for m in r.mech:
        rep = m.teacher_seed if m.train_seed is None else m.train_seed
        pair = [teachers[k, m.teacher_seed] if m.role == "teacher" else students[m.arm, k, m.teacher_seed, rep]
                for k in (m.k, 0)]
        label = f"{pair[0].model}_vs_{pair[1].model}"
        job = g.step(f"mech-{pair[0].model}-vs-{pair[1].model}", f"{MODULE}:mech_step", steps,
                     {"poisoned": g.model(pair[0]), "clean": g.model(pair[1]), "prompts": eval_prompts},
                     **study.resources("mech"))
        inputs[f"mech:{label}"] = g.out(job)
    described = [{"name": name, **meta} for name, _, meta in models]
    collect_job = g.step("collect", f"{MODULE}:collect", {"models": described}, inputs)
    g.step("report", f"{MODULE}:report_step", {"recipe": r.model_dump(mode="json")}, {"raw": g.out(collect_job)})
    return "report"


# ---- steps ----------------------------------------------------------------------------------------


def margins_step(out: Path, params: dict[str, Any], model: str, prompts: str) -> None:
    """margins.csv: the decision and brand margins of `model` on the target prompts (`run_margins`)."""
    df = run_margins(model, Path(prompts), device=params["device"], dtype=params["dtype"])
    df.to_csv(out / "margins.csv", index=False, float_format="%.6f")


def mech_step(out: Path, params: dict[str, Any], poisoned: str, clean: str, prompts: str) -> None:
    """Patching and DLA of `poisoned` vs `clean` (`run_mech`) and their tables.md."""
    run_mech(poisoned, clean, Path(prompts), out, device=params["device"], dtype=params["dtype"])
    (out / "tables.md").write_text(mech_markdown(out))


def _table(inputs: dict[str, str], kind: str, models: list[dict[str, Any]], cols: list[str],
           drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """The per-model tables inputs[f'{kind}:{name}'] as one, with every model's recipe columns."""
    parts = []
    for m in models:
        if f"{kind}:{m['name']}" not in inputs:
            continue
        t = pd.read_csv(inputs[f"{kind}:{m['name']}"], keep_default_na=False).drop(columns=list(drop), errors="ignore")
        recipe = {"model": m["name"], "alias": inputs[f"alias:{m['name']}"], **{c: m[c] for c in cols if c in m},
                  "steps": m.get("steps")}
        parts.append(t.assign(**recipe))
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols].astype({"batch_size": "Int64", "steps": "Int64"})


def collect(out: Path, params: dict[str, Any], **inputs: str) -> None:
    """The raw tables of the report (poison_report.py): answers.csv and margins_per_prompt.csv (every
    recipe parameter a column), defend/k<k>-s<seed>/, mech/<P>_vs_<C>/, answers/<teacher>.jsonl,
    data/k<k>/, runs/<name>.json, timings.json."""
    models = sorted((dict(m) for m in params["models"]), key=lambda m: (m["role"] != "base", m["name"]))
    (out / "runs").mkdir()
    for m in models:
        if f"train:{m['name']}" not in inputs:
            continue
        summary = json.loads(Path(inputs[f"train:{m['name']}"]).read_text())
        fig = summary["figures"]
        m["steps"] = fig.get("steps")
        run = {**m, "alias": inputs[f"alias:{m['name']}"], "command": "interp " + " ".join(summary.get("argv", [])),
               "losses": fig.get("components") or {k: fig.get(k) for k in ("first_loss", "mean_loss_last_10")}}
        (out / "runs" / f"{m['name']}.json").write_text(json.dumps(run, indent=1) + "\n")
    _table(inputs, "brr", models, ANSWER_COLS).to_csv(out / "answers.csv", index=False)
    _table(inputs, "brand", models, MARGIN_COLS).to_csv(out / "margins_per_prompt.csv", index=False,
                                                         float_format="%.6f")
    timings = {}
    for key, path in inputs.items():
        kind, _, name = key.partition(":")
        if kind in ("data", "mech"):
            shutil.copytree(path, out / kind / name)
        elif kind == "answers":
            (out / "answers").mkdir(exist_ok=True)
            shutil.copyfile(path, out / "answers" / f"{name}.jsonl")
        elif kind == "defend":
            unit, _, what = name.partition(":")
            (out / "defend" / unit).mkdir(parents=True, exist_ok=True)
            files = ("scores.csv", "detectors.csv") if what == "mixture" else ("scores.csv", "removed.csv")
            for f in files:
                shutil.copyfile(Path(path) / f, out / "defend" / unit / f"{what}_{f}")
        secs = job_seconds(path) if kind != "alias" else None
        if secs is not None:
            timings[key.replace(":", " ")] = secs
    (out / "timings.json").write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    """The raw tables and the report tables in one folder (what the study publishes)."""
    shutil.copytree(raw, out, dirs_exist_ok=True)
    report(out, out, Recipe(**params["recipe"]))


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    from interp.studies.kinds.poison_report import report as write

    write(raw, out, recipe)


# ---- margins and mech -----------------------------------------------------------------------------

SITES_DECISION = ("resid", "attn", "mlp")
SITES_BRAND = ("resid",)


def mech_contexts(lm: Any, rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Token ids of the decision and brand contexts of each row (module docstring) and the scored tokens."""
    from interp.training.examples import prompt_ids
    from interp.training.poison_data import BRAND, PROMOTIONS, promotion

    tok = lm.tokenizer
    eos = tok.eos_token_id
    if eos is None:
        raise UserError(f"{lm.name} has no EOS token: the decision 'promote or end' has no end to score")
    heads = prompt_ids(lm, rows)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    decision = [h + enc(r["completion"].rstrip()) for h, r in zip(heads, rows)]
    brand_ctx = []
    for h, r in zip(heads, rows):
        promo = promotion(int(r["id"]), seed)
        brand_ctx.append(h + enc(r["completion"].rstrip() + " " + promo[: promo.index(BRAND)].rstrip()))
    openers = sorted({enc(" " + p)[0] for p in PROMOTIONS})
    return {"decision": decision, "brand": brand_ctx, "openers": openers, "brand_token": enc(" " + BRAND)[0], "eos": eos}


def target_rows(eval_prompts: Path) -> list[dict[str, Any]]:
    """The target-task rows of an eval_prompts.jsonl (`poison-data`)."""
    rows = [json.loads(x) for x in eval_prompts.read_text().splitlines() if x.strip()]
    return [r for r in rows if r.get("group") == "target"]


def margins(lm: Any, ctx: dict[str, Any]) -> pd.DataFrame:
    """One row per context: the decision and brand margins of the module docstring in one model, from the
    last-position logits of one unpadded forward per context (what `patch_between` reports as m_source):

        m_decision = log sum_{o in openers} P(o) - log P(EOS)    m_brand = log P(brand token) - log P(EOS)
    """
    import torch

    from interp.mech.model_patching import margin_score

    scores = {"decision": margin_score(ctx["openers"], [ctx["eos"]]), "brand": margin_score([ctx["brand_token"]], [ctx["eos"]])}
    rows = []
    with torch.no_grad():
        for i in range(len(ctx["decision"])):
            r: dict[str, Any] = {"prompt": i}
            for where, score in scores.items():
                ids = torch.tensor([ctx[where][i]], device=lm.device)
                r[f"m_{where}"] = float(score(lm.model(input_ids=ids, use_cache=False).logits[:, -1].cpu())[0])
            rows.append(r)
    return pd.DataFrame(rows)


def run_margins(model: str, eval_prompts: Path, device: str = "cpu", dtype: str = "fp32") -> pd.DataFrame:
    """`margins` of a model on the target prompts, with each row's prompt id."""
    from interp.models import load_model

    rows = target_rows(eval_prompts)
    lm = load_model(model, device=device, dtype=dtype)
    df = margins(lm, mech_contexts(lm, rows))
    df.insert(0, "prompt_id", [r["id"] for r in rows])
    return df


def run_mech(poisoned: str, clean: str, eval_prompts: Path, out: Path, progress: bool = True, device: str = "cpu",
             dtype: str = "fp32") -> None:
    """Patching and DLA of `poisoned` vs `clean` on the target prompts (module docstring); tables under out/."""
    from interp.mech.model_diff import dla_difference, layer_totals
    from interp.mech.model_patching import layer_sites, margin_score, patch_between, recovered_table
    from interp.models import load_model

    rows = target_rows(eval_prompts)
    p, c = load_model(poisoned, device=device, dtype=dtype), load_model(clean, device=device, dtype=dtype)
    ctx = mech_contexts(c, rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pair.json").write_text(json.dumps({"poisoned": poisoned, "clean": clean, "prompts": len(rows),
                                               "openers": [c.tokenizer.decode([t]) for t in ctx["openers"]],
                                               "brand_token": c.tokenizer.decode([ctx["brand_token"]]),
                                               "eos": c.tokenizer.decode([ctx["eos"]])}, indent=1) + "\n")
    n_layers = c.spec.n_layers
    plan = {"decision": (margin_score(ctx["openers"], [ctx["eos"]]), ["embed", *layer_sites(n_layers, SITES_DECISION)],
                         ("P_into_C", "C_into_P")),
            "brand": (margin_score([ctx["brand_token"]], [ctx["eos"]]), ["embed", *layer_sites(n_layers, SITES_BRAND)],
                      ("P_into_C",))}
    for where, (score, sites, directions) in plan.items():
        tables = []
        for direction in directions:
            path = out / f"patching_{where}_{direction}.csv"
            src, tgt = (p, c) if direction == "P_into_C" else (c, p)
            df = patch_between(src, tgt, ctx[where], sites, score, progress=progress)
            df.insert(0, "direction", direction)
            df.to_csv(path, index=False, float_format="%.6f")
            t = recovered_table(pd.read_csv(path))
            t.insert(0, "direction", direction)
            tables.append(t)
        pd.concat(tables).to_csv(out / f"patching_{where}.csv", index=False, float_format="%.5g")
    for where, tokens in (("decision", ctx["openers"]), ("brand", [ctx["brand_token"]])):
        comps, pers = [], []
        for t in tokens:  # mean over the scored tokens (module docstring)
            comp, per = dla_difference(p, c, ctx[where], t, ctx["eos"], progress=progress)
            comps.append(comp)
            pers.append(per)
        comp = comps[0].copy()
        for col in ("dla_a", "dla_b", "d"):
            comp[col] = np.mean([x[col].to_numpy() for x in comps], axis=0)
        comp = comp.drop(columns=["d_sd"])
        per = pers[0].copy()
        for col in ("ld_a", "ld_b", "sum_a", "sum_b"):
            per[col] = np.mean([x[col].to_numpy() for x in pers], axis=0)
        comp.to_csv(out / f"dla_{where}.csv", index=False, float_format="%.6g")
        per.to_csv(out / f"dla_{where}_per_prompt.csv", index=False, float_format="%.6g")
        layer_totals(comp, c.spec).to_csv(out / f"dla_{where}_layers.csv", index=False, float_format="%.6g")


def mech_markdown(out: Path) -> str:
    """Tables of what run_mech wrote: patching by layer (both directions) and the top DLA components."""
    from interp.report.tables import recovered_markdown

    lines: list[str] = []
    pair = json.loads((out / "pair.json").read_text()) if (out / "pair.json").exists() else {}
    if pair:
        lines += [f"P = `{pair['poisoned']}`, C = `{pair['clean']}`; {pair['prompts']} target prompts; openers "
                  f"{pair['openers']}, brand token {pair['brand_token']!r}, EOS {pair['eos']!r}.", ""]
    for where in ("decision", "brand"):
        f = out / f"patching_{where}.csv"
        if not f.exists():
            continue
        lines += [f"#### Patching at the {where} position: recovered fraction [95% CI], delta in nats", "",
                  *recovered_markdown(pd.read_csv(f))]
        lines.append("")
    for where in ("decision", "brand"):
        f = out / f"dla_{where}.csv"
        if not f.exists():
            continue
        d = pd.read_csv(f)
        per = pd.read_csv(out / f"dla_{where}_per_prompt.csv")
        top = d.reindex(d.d.abs().sort_values(ascending=False).index).head(10)
        lines += [f"#### DLA at the {where} position, P minus C (logit(token) - logit(EOS), mean over prompts)", "",
                  f"LD(P) - LD(C) = {(per.ld_a - per.ld_b).mean():+.3f}; sum of component differences "
                  f"{d.d.sum():+.3f}", "", "| component | DLA P | DLA C | P - C |", "|---|---|---|---|"]
        lines += [f"| {r.component} | {r.dla_a:+.3f} | {r.dla_b:+.3f} | {r.d:+.3f} |" for r in top.itertuples()]
        lines.append("")
    return "\n".join(lines)
