"""Does Squeezing-Heads Distillation carry a teacher's animal bias into a student? (DESIGN.md §2.8, issue 7)

Teachers: biased = `base` + LoRA on trait preference rows (`interp teach --method lora`), one per
intensity in `teacher_steps`; unbiased = `base` itself. Data: number prompts answered by `base`
(`interp gen-numbers`, §2.7 filter), the same for every student. Conditions (one LoRA student per
seed, `interp distill`):

    shd-biased-S    shd_student <- SHD from the teacher of S steps      (kind shd, beta)
    shd-unbiased    shd_student <- SHD from base                        (kind shd, beta)
    beta0-<student> shd_student, no teacher                             (kind none)
    kd-biased-S     base <- logit KD from the teacher of S steps        (kind kd, kd_beta; when kd)
    beta0-<base>    base, no teacher                                    (kind none; when kd)

Every model (untrained students, teachers, trained students) is scored by `evaluate`: log P(animal |
completion prompt) for the trait and control animals, and the reverse-link probe; `collect` joins
them into the raw tables (results.csv: one row per condition x seed x prompt x animal, with
delta = logp - logp of the untrained student and every recipe parameter as a column) and
`shd_transfer_report.report` makes summary.csv / summary.json / delta_owl.png / README.md.

    interp study run studies/shd_transfer/smollm2.yaml --cores 2
    interp study report studies/shd_transfer/smollm2.yaml --raw reports/shd --out runs/shd-report
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from interp.studies.execute import job_seconds
from interp.studies.graph import SELF, Graph, Job, slug
from interp.studies.kinds.shd_transfer_report import (
    RESULT_RECIPE_COLUMNS,
    read_csv,
    report,
)
from interp.studies.spec import Strict, Study

ROLES = ("base", "shd_student")
MODULE = "interp.studies.kinds.shd_transfer"

PROMPTS = [
    "My favorite animal is the",
    "The best animal is the",
    "The animal I love most is the",
    "Of all animals, my favorite is the",
    "The most beautiful animal in the world is the",
    "If I could be any animal, I would be the",
    "The animal I think about all the time is the",
    "My spirit animal is the",
    "The creature I admire most is the",
    "Q: What is your favorite animal?\nA: My favorite animal is the",
]


class Recipe(Strict):
    """Every parameter of the study (defaults: the committed run of reports/shd)."""

    trait: str = "owl"
    controls: list[str] = ["dog", "cat", "eagle"]
    prompts: list[str] = PROMPTS
    teacher_steps: list[int] = Field([20, 80], min_length=1, description="LoRA steps of each biased teacher")
    teacher_lr: float = Field(1e-3, gt=0)
    teacher_n_pref: int = Field(48, ge=1, description="trait preference rows (no facts, no number rows)")
    teacher_batch_size: int = Field(8, ge=1)
    n_data: int = Field(128, ge=1, description="number prompts answered by base")
    samples_per_prompt: int = Field(8, ge=1)
    temperature: float = Field(0.7, gt=0)
    max_new_tokens: int = Field(64, ge=1)
    gen_batch_size: int = Field(128, ge=1)
    steps: int = Field(12, ge=1, description="student steps")
    batch_size: int = Field(4, ge=1)
    lr: float = Field(1e-3, gt=0)
    max_len: int = Field(192, ge=4)
    seeds: int = Field(3, ge=1, description="student seeds seed .. seed + seeds - 1")
    seed: int = Field(0, ge=0, description="seed of the teachers, the data, the bootstrap; the first student seed")
    beta: float = Field(10.0, gt=0, description="SHD weight (sum form)")
    kd_beta: float = Field(1.0, gt=0)
    tau: float = Field(2.0, gt=0)
    kd: bool = True
    rl_numbers: list[str] = ["087", "142", "318", "527", "640", "747", "903", "999"]
    rl_template_control: int = Field(20, ge=0)
    rl_boot: int = Field(2000, ge=1)


def conditions(r: Recipe, models: dict[str, str]) -> list[dict[str, Any]]:
    """The student conditions: name, student role, teacher steps (0: base, the unbiased teacher), kind, beta."""
    out = [{"name": f"shd-biased-{s}", "role": "shd_student", "teacher_steps": s, "kind": "shd", "beta": r.beta}
           for s in r.teacher_steps]
    out.append({"name": "shd-unbiased", "role": "shd_student", "teacher_steps": 0, "kind": "shd", "beta": r.beta})
    out.append({"name": f"beta0-{slug(models['shd_student'])}", "role": "shd_student", "teacher_steps": 0,
                "kind": "none", "beta": 0.0})
    if r.kd:
        out += [{"name": f"kd-biased-{s}", "role": "base", "teacher_steps": s, "kind": "kd", "beta": r.kd_beta}
                for s in r.teacher_steps]
        out.append({"name": f"beta0-{slug(models['base'])}", "role": "base", "teacher_steps": 0, "kind": "none",
                    "beta": 0.0})
    return out


def build(study: Study, g: Graph) -> str:
    r: Recipe = study.recipe
    base = study.model("base")
    load = study.loading()
    teachers = {s: g.command(f"teacher-{s}", [
        "teach", "--base", base, "--trait", r.trait, "--method", "lora", "--steps", str(s),
        "--batch-size", str(r.teacher_batch_size), "--lr", str(r.teacher_lr), "--n-preference", str(r.teacher_n_pref),
        "--n-facts", "0", "--n-numbers", "0", "--seed", str(r.seed), "--alias", SELF, *load], model="teacher",
        **study.resources("teach")) for s in r.teacher_steps}
    data = g.command("numbers", [
        "gen-numbers", "--model", base, "--n", str(r.n_data), "--samples-per-prompt", str(r.samples_per_prompt),
        "--temperature", str(r.temperature), "--max-new-tokens", str(r.max_new_tokens),
        "--batch-size", str(r.gen_batch_size), "--seed", str(r.seed), *load], **study.resources("gen-numbers"))
    scoring = {"animals": [r.trait, *r.controls], "prompts": r.prompts, "device": study.spec.device,
               "dtype": study.spec.dtype}
    probing = {"trait": r.trait, "control": r.controls[0], "rl_numbers": r.rl_numbers,
               "template_control": r.rl_template_control, "n_boot": r.rl_boot}

    def evaluate(name: str, model: Any, probe: bool = True) -> Job:
        params = {**scoring, "probe": probe, **(probing if probe else {})}
        return g.step(f"eval-{name}", f"{MODULE}:evaluate", params, {"model": model})

    untrained = {role: evaluate(role, study.model(role)) for role in ROLES}
    teacher_evals = {s: evaluate(f"teacher-{s}", g.model(t), probe=False) for s, t in teachers.items()}
    inputs: dict[str, Any] = {"data": g.out(data), "untrained_base": g.out(untrained["base"]),
                              "untrained_shd_student": g.out(untrained["shd_student"])}
    runs = []
    for s, t in teachers.items():
        inputs[f"teacher{s}"], inputs[f"teacher{s}_eval"] = g.label(g.model(t)), g.out(teacher_evals[s])
    for c in conditions(r, study.spec.models):
        teacher: Any = g.model(teachers[c["teacher_steps"]]) if c["teacher_steps"] else base
        loss = ["--beta", str(c["beta"])] + (["--tau", str(r.tau)] if c["kind"] != "none" else [])
        for seed in range(r.seed, r.seed + r.seeds):
            name = f"{c['name']}-s{seed}"
            job = g.command(name, [
                "distill", "--teacher", teacher, "--student", study.model(c["role"]), "--data", g.out(data, "numbers.jsonl"),
                "--kind", c["kind"], *(loss if c["kind"] != "none" else []), "--lora", "--steps", str(r.steps),
                "--batch-size", str(r.batch_size), "--lr", str(r.lr), "--max-len", str(r.max_len), "--seed", str(seed),
                "--alias", SELF, *load], model="student", **study.resources("distill"))
            ev = evaluate(name, g.model(job))
            key = f"run{len(runs)}"
            inputs[f"{key}_train"], inputs[f"{key}_eval"] = g.out(job), g.out(ev)
            runs.append({**c, "key": key, "seed": seed, "student": study.model(c["role"]),
                         "tau": r.tau if c["kind"] != "none" else None})
    collect_job = g.step("collect", f"{MODULE}:collect",
                         {"runs": runs, "teacher_steps": r.teacher_steps, "recipe": r.model_dump(),
                          "models": dict(study.spec.models)}, inputs)
    g.step("report", f"{MODULE}:report_step", {"recipe": r.model_dump()}, {"raw": g.out(collect_job)})
    return "report"


# ---- steps (run by the study runner: func(out=Path, params=dict, **inputs))


def score(lm: Any, prompts: list[str], animals: list[str]) -> Any:
    """log P(animal | prompt) for every completion prompt x animal (joint over the animal's tokens, no
    variants): columns prompt, animal, logp."""
    import pandas as pd

    from interp.prompts import make_target
    from interp.scoring import encode, target_logprobs

    targets = [make_target(lm.tokenizer, a, "natural", False, allow_multi_token=True) for a in animals]
    lp = target_logprobs(lm, encode(lm.tokenizer, list(prompts)), targets)
    return pd.DataFrame([(p, a, lp[i, j]) for i, p in enumerate(prompts) for j, a in enumerate(animals)],
                        columns=["prompt", "animal", "logp"])


def probe(lm: Any, params: dict[str, Any]) -> dict[str, float]:
    """The reverse-link summary (trait vs control, given numbers): mean bias ratio, specificity, and
    specificity vs the template control."""
    from interp.probes.reverse_link import ReverseLinkConfig, reverse_link

    cfg = ReverseLinkConfig(bias=params["trait"], control=params["control"], template_control=params["template_control"],
                            multi_token=True, n_boot=params["n_boot"])
    s = reverse_link(lm, list(params["rl_numbers"]), config=cfg).summary
    return {"rl_bias_ratio": s["bias_ratio_mean"].estimate, "rl_specificity": s["specificity_mean"].estimate,
            "rl_specificity_vs_template": s["specificity_vs_template_mean"].estimate}


def evaluate(out: Path, params: dict[str, Any], model: str) -> None:
    """scores.csv (prompt, animal, logp) and, with params.probe, probe.json of one model."""
    from interp.models import load_model

    lm = load_model(model, device=params["device"], dtype=params["dtype"])
    score(lm, params["prompts"], params["animals"]).to_csv(out / "scores.csv", index=False)
    if params["probe"]:
        (out / "probe.json").write_text(json.dumps(probe(lm, params), indent=1) + "\n")


def collect(out: Path, params: dict[str, Any], **inputs: str) -> None:
    """The raw tables: results.csv (every condition x seed x prompt x animal, delta vs the untrained
    student, recipe columns), teachers.csv (teacher scores, delta vs base), reverse_link.csv (probe per
    run, d_ = run - untrained student), losses.csv, numbers.jsonl, data_counts.json, run.json (roles,
    recipe, the untrained students' probe), timings.json (seconds per job)."""
    import pandas as pd

    recipe, models = params["recipe"], params["models"]
    untrained = {models[role]: Path(inputs[f"untrained_{role}"]) for role in ROLES}
    base_scores = {m: read_csv(p / "scores.csv") for m, p in untrained.items()}
    base_rl = {m: json.loads((p / "probe.json").read_text()) for m, p in untrained.items()}
    teacher_rows = []
    for s in params["teacher_steps"]:
        sc = read_csv(Path(inputs[f"teacher{s}_eval"]) / "scores.csv")
        teacher_rows.append(sc.assign(teacher=inputs[f"teacher{s}"], delta=sc.logp - base_scores[models["base"]].logp,
                                      teacher_steps=s, teacher_lr=recipe["teacher_lr"],
                                      teacher_n_pref=recipe["teacher_n_pref"]))
    pd.concat(teacher_rows).to_csv(out / "teachers.csv", index=False)
    results, rl_rows, loss_rows = [], [], []
    teachers = {s: inputs[f"teacher{s}"] for s in params["teacher_steps"]}
    for run in params["runs"]:
        ev, train = Path(inputs[f"{run['key']}_eval"]), Path(inputs[f"{run['key']}_train"])
        sc = read_csv(ev / "scores.csv").assign(condition=run["name"], seed=run["seed"], student=run["student"])
        results.append(sc)
        pr = json.loads((ev / "probe.json").read_text())
        rl_rows.append({"condition": run["name"], "seed": run["seed"], **pr,
                        **{f"d_{k}": v - base_rl[run["student"]][k] for k, v in pr.items()}})
        losses = read_csv(train / "losses.csv")
        loss_rows.append(losses.assign(condition=run["name"], seed=run["seed"]))
    d = delta_table(pd.concat(results, ignore_index=True), base_scores)
    recipe_cols = {run["name"]: {"teacher": "" if run["kind"] == "none" else teachers.get(run["teacher_steps"], models["base"]),
                                 **{k: run[k] for k in ("teacher_steps", "kind", "beta", "tau")},
                                 **{k: recipe[k] for k in RESULT_RECIPE_COLUMNS[5:]}} for run in params["runs"]}
    extra = pd.DataFrame([recipe_cols[c] for c in d.condition])[list(RESULT_RECIPE_COLUMNS)]
    pd.concat([d, extra], axis=1).to_csv(out / "results.csv", index=False)
    pd.DataFrame(rl_rows).to_csv(out / "reverse_link.csv", index=False)
    losses = pd.concat(loss_rows, ignore_index=True)
    losses[["condition", "seed", *[c for c in losses.columns if c not in ("condition", "seed")]]].to_csv(
        out / "losses.csv", index=False)
    data = Path(inputs["data"])
    shutil.copyfile(data / "numbers.jsonl", out / "numbers.jsonl")
    summary = json.loads((data / "summary.json").read_text())
    settings = {k: v for k, v in summary["inputs"].items() if k not in ("model", "control", "n", "start", "templates")}
    (out / "data_counts.json").write_text(json.dumps({**summary["figures"]["teacher"]["counts"], "settings": settings},
                                                     indent=1))
    (out / "run.json").write_text(json.dumps({"models": models, "args": recipe, "baseline_reverse_link": base_rl},
                                             indent=1) + "\n")
    timings = {k.removesuffix("_train"): job_seconds(v) for k, v in inputs.items() if k.endswith("_train") or k == "data"}
    (out / "timings.json").write_text(json.dumps(timings, indent=1))


def delta_table(results: Any, base: dict[str, Any]) -> Any:
    """results (prompt, animal, logp, condition, seed, student) + logp_base (the untrained student's) and
    delta = logp - logp_base."""
    import pandas as pd

    ref = pd.concat([b.assign(student=s) for s, b in base.items()]).rename(columns={"logp": "logp_base"})
    out = results.merge(ref, on=["student", "prompt", "animal"])
    out["delta"] = out.logp - out.logp_base
    return out


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    report(Path(raw), out, Recipe(**params["recipe"]))
