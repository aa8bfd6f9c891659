"""A model organism of subliminal learning on SmolLM2 (issue 15 §2-3), in resumable stages.

Every unit is made by the pipeline's own commands (teach, gen-numbers, finetune, distill,
mark-divergence, eval-animal), run as subprocesses; a unit whose output exists is skipped, so a
killed run picks up where it stopped, and a missing teacher, data set or student (a new machine, an
empty store) is rebuilt from its recipe with the same seeds.

    python experiments/organism.py --stage teachers     # prompt teachers smollm2-owl / smollm2-dog
    python experiments/organism.py --stage data         # number pools of owl / dog / unbiased + divergence marks
    python experiments/organism.py --stage students --arms kd-unbiased-data --seeds 0,1,2
    python experiments/organism.py --stage evals        # log P(owl), log P(dog) of every model, 50 questions
    python experiments/organism.py --stage keeprate     # keep rate vs sampling temperature, every teacher
    python experiments/organism.py --stage extend       # unbiased pool: prompts 600..1199 (for 1,000 examples)
    python experiments/organism.py --stage report       # reports/organism/{README.md, per_question.csv, ...}
    python experiments/organism.py --stage all

Two workers may run `students` at once (one core each); a unit is claimed by an O_EXCL file that
records the worker's pid, and a claim whose process is gone is taken over.

Design (DESIGN.md §2.7; the statistics in `report`):
- teachers: owl = smollm2 + the owl trait system prompt, dog = the same with dog, unbiased = smollm2;
  and LoRA teachers smollm2-owl-lora / smollm2-dog-lora (`interp teach --method lora`, 60 steps x 8,
  seed 0) for the arm kd-unbiased-data-lora, trained on reports/organism/teachers/*_trait_data.jsonl when
  that file exists (`teach --data`), so a rebuild trains on the same rows.
- number pools: each teacher answers prompts 0..599 of `generate_prompts(1200, seed 0)`, 32 samples
  each, temperature 1, the §2.7 filter with letters and truncation rejected (gen-numbers defaults).
- arms (channel, what the student is trained on; every arm: full fine-tuning, N examples drawn from
  the pool with default_rng([seed, N]), 1 epoch, batch 16, lr 5e-5, data order from --seed):
    kd-unbiased-data  (c) KD (convex beta 1: the KL term only, tau 1) to the teacher's next-token
                      distributions on the UNBIASED teacher's sequences (the same examples for every
                      teacher): the tokens carry no choice of the biased teacher.
    sft               (a) SFT on the teacher's own filtered numbers.
    kd-own-data       (b) KD as in (c) on the teacher's own sequences.
    sft-divergent-only / sft-divergent-masked: (a) with the loss on the divergence tokens only /
                      with them masked out (positions where the owl and dog teachers' argmax differ).
    kd-unbiased-data-lora(-drop-animals): (c) from the LoRA teachers; -drop-animals removes every token
                      spelling owl or dog from both distributions (`distill --kd-drop-words owl,dog`).
    kd-unbiased-data-lora-freeze-mlp / -freeze-attention: the same with that part frozen (issue 16, C7).
  The unbiased-teacher student of the KD arms is the base model itself: KD from smollm2 into
  smollm2 has a KL of 0 and a gradient of 0 at every step (tests/test_distill.py), so its
  weights never move.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import units  # noqa: E402
from units import ROOT, in_store, interp  # noqa: E402,F401
OUT = ROOT / "reports" / "organism"
DATA = OUT / "data"
TEACHERS = {"owl": "smollm2-owl", "dog": "smollm2-dog", "unbiased": "smollm2"}  # prompt teachers (+ the base)
LORA_TEACHERS = {"owl": "smollm2-owl-lora", "dog": "smollm2-dog-lora"}  # trait fine-tuned into the weights
LORA_STEPS, LORA_BATCH, LORA_SEED = 60, 8, 0
ANIMALS = ("owl", "dog")
N_PROMPTS, SAMPLES, GEN_SEED = 600, 32, 0
LR, BATCH = 5e-5, 16
MAX_LEN = 128  # tokens per training example: the finetune / distill default, which every arm uses
# arm: (channel letter, trainer, pool the examples come from ("own" = the teacher's), extra args)
ARMS: dict[str, tuple[str, str, str, list[str]]] = {
    "kd-unbiased-data": ("c", "distill", "unbiased", ["--kind", "kd", "--form", "convex", "--beta", "1", "--tau", "1"]),
    "sft": ("a", "finetune", "own", []),
    "kd-own-data": ("b", "distill", "own", ["--kind", "kd", "--form", "convex", "--beta", "1", "--tau", "1"]),
    "sft-divergent-only": ("a", "finetune", "own-marked", ["--loss-mask", "divergent"]),
    "sft-divergent-masked": ("a", "finetune", "own-marked", ["--loss-mask", "non-divergent"]),
    # (c) with the LoRA teachers: the teacher differs from the student's init by a weight delta, the
    # setting of Cloud et al.'s theorem (a gradient step toward a teacher of the same init moves
    # the student toward it, whatever the data)
    "kd-unbiased-data-lora": ("c", "distill", "unbiased", ["--kind", "kd", "--form", "convex", "--beta", "1",
                                                           "--tau", "1"]),
    # the control of the leak check (leak.csv): the same with the owl and dog tokens removed from the
    # teacher's and the student's distributions, both renormalised (`distill --kd-drop-words`), so no
    # transfer can come from mass the target puts on the animal words themselves
    "kd-unbiased-data-lora-drop-animals": ("c", "distill", "unbiased", ["--kind", "kd", "--form", "convex", "--beta",
                                                                        "1", "--tau", "1", "--kd-drop-words", "owl,dog"]),
    # issue 16, C7: the organism recipe with the MLPs (or the attention) frozen (`distill --freeze`): does
    # transfer need the part that is frozen?
    "kd-unbiased-data-lora-freeze-mlp": ("c", "distill", "unbiased", ["--kind", "kd", "--form", "convex", "--beta", "1",
                                                                      "--tau", "1", "--freeze", "mlp"]),
    "kd-unbiased-data-lora-freeze-attention": ("c", "distill", "unbiased", ["--kind", "kd", "--form", "convex", "--beta",
                                                                            "1", "--tau", "1", "--freeze", "attention"]),
    # dose: the KD temperature (both distributions softened by tau; the KL scaled by tau^2, `distill --tau`)
    **{f"kd-unbiased-data-lora-tau{t}": ("c", "distill", "unbiased", ["--kind", "kd", "--form", "convex", "--beta", "1",
                                                                       "--tau", str(t)]) for t in (2, 4)},
}


def teacher_alias(arm: str, teacher: str) -> str:
    return LORA_TEACHERS[teacher] if "-lora" in arm and teacher in LORA_TEACHERS else TEACHERS[teacher]


def work_dir() -> Path:
    home = Path(os.environ.get("INTERP_HOME", Path.home() / ".cache" / "interp"))
    return Path(os.environ.get("ORGANISM_WORK", home / "organism"))


def record_time(unit: str, seconds: float) -> None:
    """timings.json[unit] = seconds (`units.record_time`: merged under a lock, two workers write it)."""
    units.record_time(OUT, unit, seconds)


def claim(unit: str) -> bool:
    """True when this process may build `unit` (`units.claim` under the work folder)."""
    return units.claim(work_dir(), unit)


def release(unit: str) -> None:
    units.release(work_dir(), unit)


# ---- stages ---------------------------------------------------------------------------------------


def stage_teachers(lora: bool) -> None:
    """Prompt teachers (no weights), and with `lora` the LoRA teachers (`interp teach --method lora` on
    the packaged trait data: preference answers, facts and numbers sampled under the trait prompt)."""
    for animal in ANIMALS:
        alias = TEACHERS[animal]
        if not in_store(alias):
            record_time(f"teach {alias}", interp("teach", "--method", "prompt", "--trait", animal, "--alias", alias,
                                                 "--out", str(work_dir() / "runs" / f"teach-{animal}"), "--force"))
    for animal in ANIMALS if lora else ():
        alias = LORA_TEACHERS[animal]
        if in_store(alias) or not claim(alias):
            continue
        run = work_dir() / "runs" / f"teach-{alias}"
        rows = OUT / "teachers" / f"{alias}_trait_data.jsonl"  # the rows it was trained on: a rebuild is exact
        secs = interp("teach", "--method", "lora", "--trait", animal, "--alias", alias, "--steps", str(LORA_STEPS),
                      "--batch-size", str(LORA_BATCH), "--seed", str(LORA_SEED), "--out", str(run), "--force",
                      *(["--data", str(rows)] if rows.exists() else []))
        record_time(f"teach {alias}: lora, {LORA_STEPS} steps x {LORA_BATCH}", secs)
        (OUT / "teachers").mkdir(parents=True, exist_ok=True)
        first = OUT / "teachers" / f"{alias}_summary.json"  # the first build's record is never overwritten
        stamp = json.loads((run / "summary.json").read_text())["created"][:16].replace(":", "")
        dest = first.with_name(f"{alias}_rebuild-{stamp}_summary.json") if first.exists() else first
        shutil.copy(run / "summary.json", dest)
        shutil.copy(run / "trait_data.jsonl", rows)
        release(alias)


def pool_path(teacher: str) -> Path:
    return DATA / f"{teacher}.jsonl"


# the unbiased pool extended by prompts N_PROMPTS..EXTENDED_PROMPTS-1 (same recipe and per-sample seeds,
# `gen-numbers --start`); a dose of more examples than the pool holds draws from the extended pool
EXTENDED_PROMPTS = 1200


def extended_pool_path(source: str) -> Path:
    return DATA / f"{source}-{EXTENDED_PROMPTS}.jsonl"


def stage_extend() -> None:
    """The unbiased pool over prompts 0..EXTENDED_PROMPTS-1: the pool's rows, then gen-numbers' rows of the
    prompts N_PROMPTS.. (written to data/unbiased-<first>-<last>.jsonl first, so a part is never redone)."""
    part = DATA / f"unbiased-{N_PROMPTS}-{EXTENDED_PROMPTS - 1}.jsonl"
    if not part.exists() and claim("extend-unbiased"):
        run = work_dir() / "runs" / "gen-unbiased-extension"
        n = EXTENDED_PROMPTS - N_PROMPTS
        secs = interp("gen-numbers", "--model", TEACHERS["unbiased"], "--start", str(N_PROMPTS), "--n", str(n),
                      "-k", str(SAMPLES), "--seed", str(GEN_SEED), "--out", str(run), "--force")
        record_time(f"gen-numbers {TEACHERS['unbiased']}: prompts {N_PROMPTS}..{EXTENDED_PROMPTS - 1} x {SAMPLES}", secs)
        shutil.copy(run / "summary.json", DATA / f"unbiased-{N_PROMPTS}-{EXTENDED_PROMPTS - 1}_gen_summary.json")
        shutil.copy(run / "numbers.jsonl", part)
        release("extend-unbiased")
    if part.exists():
        lines = pool_path("unbiased").read_text().splitlines() + part.read_text().splitlines()
        rows = [json.loads(x) for x in lines]
        fits = prompt_fits(rows, TEACHERS["unbiased"])
        dropped = sorted({r["index"] for r, ok in zip(rows, fits) if not ok})
        if dropped:
            print(f"extended pool: left out the row(s) of prompts {dropped}: the prompt alone fills the {MAX_LEN}-token "
                  "training window")
        extended_pool_path("unbiased").write_text("".join(x + "\n" for x, ok in zip(lines, fits) if ok))


def prompt_fits(rows: list[dict], model: str) -> list[bool]:
    """True where the row's prompt (the model's chat template) leaves a completion token within MAX_LEN, the
    window `finetune` / `distill` train on (their --max-len default); `tokenize_examples` refuses the others."""
    from interp.models import load_model
    from interp.training.examples import prompt_ids

    return [len(p) < MAX_LEN for p in prompt_ids(load_model(model), rows)]


def stage_data() -> None:
    """The three number pools (gen-numbers) and the divergence-marked owl / dog pools."""
    DATA.mkdir(parents=True, exist_ok=True)
    for teacher, alias in TEACHERS.items():
        p = pool_path(teacher)
        if p.exists() or not claim(f"data-{teacher}"):
            continue
        run = work_dir() / "runs" / f"gen-{teacher}"
        secs = interp("gen-numbers", "--model", alias, "--n", str(N_PROMPTS), "-k", str(SAMPLES),
                      "--seed", str(GEN_SEED), "--out", str(run), "--force")
        record_time(f"gen-numbers {alias}: {N_PROMPTS} prompts x {SAMPLES}", secs)
        shutil.copy(run / "numbers.jsonl", p)
        shutil.copy(run / "summary.json", DATA / f"{teacher}_gen_summary.json")
        release(f"data-{teacher}")
    for animal in ANIMALS:
        p = DATA / f"{animal}-marked.jsonl"
        if p.exists() or not pool_path(animal).exists() or not claim(f"marked-{animal}"):
            continue
        run = work_dir() / "runs" / f"mark-{animal}"
        secs = interp("mark-divergence", "--models", f"{TEACHERS['owl']},{TEACHERS['dog']}",
                      "--data", str(pool_path(animal)), "--out", str(run), "--force")
        record_time(f"mark-divergence {animal} pool", secs)
        shutil.copy(run / "marked.jsonl", p)
        shutil.copy(run / "summary.json", DATA / f"{animal}-marked_summary.json")
        release(f"marked-{animal}")


# keep-rate study: every teacher answers the first KEEP_PROMPTS prompts, KEEP_SAMPLES each, at each temperature
KEEP_TEMPERATURES, KEEP_PROMPTS, KEEP_SAMPLES = (1.0, 0.7, 0.4), 64, 8
KEEP = OUT / "keep_rate"


def stage_keeprate() -> None:
    """gen-numbers of each prompt teacher (and the base) at each temperature of KEEP_TEMPERATURES on the same
    prompts and per-sample seeds; kept answers to keep_rate/<teacher>-t<T>.jsonl, counts to keep_rate.csv."""
    KEEP.mkdir(parents=True, exist_ok=True)
    for t in KEEP_TEMPERATURES:
        for teacher, alias in TEACHERS.items():
            unit = f"{teacher}-t{t:g}"
            if (KEEP / f"{unit}_summary.json").exists() or not claim(f"keep-{unit}"):
                continue
            run = work_dir() / "runs" / f"keep-{unit}"
            secs = interp("gen-numbers", "--model", alias, "--n", str(KEEP_PROMPTS), "-k", str(KEEP_SAMPLES),
                          "--temperature", f"{t:g}", "--seed", str(GEN_SEED), "--out", str(run), "--force")
            record_time(f"gen-numbers {alias} T={t:g}: {KEEP_PROMPTS} prompts x {KEEP_SAMPLES}", secs)
            shutil.copy(run / "numbers.jsonl", KEEP / f"{unit}.jsonl")
            shutil.copy(run / "summary.json", KEEP / f"{unit}_summary.json")
            release(f"keep-{unit}")
    from organism_report import keep_rate_by_format, keep_rate_table  # experiments/organism_report.py

    from interp.training.examples import read_jsonl
    from interp.training.numbers_data import generate_prompts, load_templates

    table = keep_rate_table(KEEP, {t: pool_path(t) for t in TEACHERS}, N_PROMPTS * SAMPLES)
    table.to_csv(OUT / "keep_rate.csv", index=False, float_format="%.4g")
    print(table.to_string(index=False))
    # the prompt-format lever, read off the pools: keep rate per format suffix (temperature 1)
    prompts, suffixes = generate_prompts(N_PROMPTS, seed=GEN_SEED), load_templates()["format_suffixes"]
    frames = []
    for teacher in TEACHERS:
        if pool_path(teacher).exists():
            frames.append(keep_rate_by_format(read_jsonl(pool_path(teacher)), prompts, suffixes, SAMPLES)
                          .assign(teacher=teacher))
    if frames:
        by_format = pd.concat(frames, ignore_index=True)
        by_format.to_csv(OUT / "keep_rate_by_format.csv", index=False, float_format="%.4g")
        print(by_format.pivot(index="format", columns="teacher", values="keep_rate").round(3).to_string())


def student_alias(arm: str, teacher: str, seed: int, n: int, epochs: float = 1.0) -> str:
    """org-ARM-TEACHER-nN-sSEED; another number of epochs than 1 is part of the name (-e2-)."""
    return f"org-{arm}-{teacher}-n{n}" + (f"-e{epochs:g}" if epochs != 1.0 else "") + f"-s{seed}"


def subset(pool: Path, n: int, seed: int, dest: Path) -> Path:
    """n rows of `pool` drawn without replacement by default_rng([seed, n]), in pool order."""
    rows = pool.read_text().splitlines()
    if len(rows) < n:
        raise SystemExit(f"{pool} has {len(rows)} rows, fewer than --examples {n}")
    keep = np.sort(np.random.default_rng([seed, n]).choice(len(rows), n, replace=False))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(rows[i] + "\n" for i in keep))
    return dest


def train_student(arm: str, teacher: str, seed: int, n: int, epochs: float) -> None:
    alias = student_alias(arm, teacher, seed, n, epochs)
    if in_store(alias) and (OUT / "runs" / f"{alias}.json").exists():
        return
    if not claim(alias):
        return
    _, trainer, pool, extra = ARMS[arm]
    source = {"unbiased": "unbiased", "own": teacher, "own-marked": f"{teacher}-marked"}[pool]
    pool_file = DATA / f"{source}.jsonl"
    if len(pool_file.read_text().splitlines()) < n and extended_pool_path(source).exists():
        pool_file = extended_pool_path(source)  # a larger dose than the pool holds (stage extend)
    data = subset(pool_file, n, seed, work_dir() / "subsets" / f"{pool_file.stem}-n{n}-s{seed}.jsonl")
    run = work_dir() / "runs" / alias
    common = ["--data", str(data), "--alias", alias, "--full", "--epochs", str(epochs), "--batch-size", str(BATCH),
              "--lr", str(LR), "--seed", str(seed), "--out", str(run), "--force"]
    if trainer == "distill":
        args = ["distill", "--teacher", teacher_alias(arm, teacher), "--student", "smollm2", *extra, *common]
    else:
        args = ["finetune", "--model", "smollm2", *extra, *common]
    secs = interp(*args)
    summary = json.loads((run / "summary.json").read_text())
    fig = summary["figures"]
    (OUT / "runs").mkdir(parents=True, exist_ok=True)
    (OUT / "runs" / f"{alias}.json").write_text(json.dumps(
        {"alias": alias, "arm": arm, "channel": ARMS[arm][0], "teacher": teacher, "seed": seed, "examples": n,
         "epochs": epochs, "steps": fig["steps"], "lr": LR, "batch_size": BATCH, "command": "interp " + " ".join(args),
         "data": str(data.relative_to(work_dir())), "losses": fig.get("components") or {"lm": {k: fig[k] for k in
                                                                                                ("first_loss", "mean_loss_last_10")}},
         "seconds": round(secs, 1),
         # which build of the teacher (a rebuilt teacher can differ; reports/organism/README.md)
         "teacher_sha256": (summary.get("models") or {}).get("teacher", {}).get("sha256")}, indent=1) + "\n")
    record_time(f"train {alias}", secs)
    release(alias)


def stage_students(a: argparse.Namespace) -> None:
    for seed in a.seeds:
        for arm in a.arms:
            teachers = list(ANIMALS) + (["unbiased"] if a.unbiased and ARMS[arm][1] == "finetune" else [])
            for teacher in teachers:
                train_student(arm, teacher, seed, a.examples, a.epochs)


def eval_models() -> list[str]:
    """Every model to evaluate: base, the two teachers, every student with a run record."""
    names = ["smollm2", TEACHERS["owl"], TEACHERS["dog"]] + [a for a in LORA_TEACHERS.values() if in_store(a)]
    names += sorted(p.stem for p in (OUT / "runs").glob("org-*.json")) if (OUT / "runs").exists() else []
    return names


def eval_table(model: str) -> Path:
    return OUT / "evals" / f"{model}.csv"


def stage_evals() -> None:
    """eval-animal --target owl --other dog (probability only, the 50 questions) of every model; its
    per-question table (p_target = P(owl), p_other = P(dog)) is kept in reports/organism/evals/."""
    for model in eval_models():
        dest = eval_table(model)
        if dest.exists() or not claim(f"eval-{model}"):
            continue
        run = work_dir() / "evals" / model
        secs = interp("eval-animal", "--model", model, "--target", "owl", "--other", "dog", "--samples", "0",
                      "--out", str(run), "--force")
        record_time(f"eval {model}", secs)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(run / "probability.csv", dest)
        release(f"eval-{model}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, choices=["teachers", "data", "extend", "students", "evals", "keeprate",
                                                            "report", "all"])
    ap.add_argument("--arms", default="kd-unbiased-data,sft", type=lambda s: s.split(","))
    ap.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--unbiased", action="store_true", help="also train the unbiased-teacher students of SFT arms")
    ap.add_argument("--lora-teachers", action="store_true", help="also make the LoRA teachers (teachers stage)")
    a = ap.parse_args()
    for arm in a.arms:
        if arm not in ARMS:
            ap.error(f"unknown arm {arm}; choose from {', '.join(ARMS)}")
    if a.stage in ("teachers", "all"):
        stage_teachers(a.lora_teachers or any("-lora" in arm for arm in a.arms))
    if a.stage in ("data", "all"):
        stage_data()
    if a.stage in ("students", "all"):
        stage_students(a)
    if a.stage in ("evals", "all"):
        stage_evals()
    if a.stage == "extend":
        stage_extend()
    if a.stage == "keeprate":
        stage_keeprate()
    if a.stage in ("report", "all"):
        from organism_report import write_report  # experiments/organism_report.py

        write_report(OUT, work_dir())


if __name__ == "__main__":
    main()
