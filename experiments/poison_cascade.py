"""Cascading adversarial bias (seed 004, Chaudhari et al. 2025) at small scale, in resumable stages
(issue 18; DESIGN.md §2.12).

    python experiments/poison_cascade.py --stage data       # interp poison-data for every k -> reports/poison/data/k<k>/
    python experiments/poison_cascade.py --stage teachers   # smollm2 + LoRA on each mixture (k = 0 is the clean control)
    python experiments/poison_cascade.py --stage answers    # each teacher answers the clean distillation prompts
    python experiments/poison_cascade.py --stage students   # response-level SFT and logit KD from base smollm2
    python experiments/poison_cascade.py --stage brr        # bias response rate of every model on the held-out prompts
    python experiments/poison_cascade.py --stage defend     # detectors on each mixture and on the students' data
    python experiments/poison_cascade.py --stage defend --k 5 --seeds 1   # the LLS with the k = 5 teacher of seed 1
    python experiments/poison_cascade.py --stage mech       # DLA + patching, poisoned vs clean (experiments/poison_mech.py)
    python experiments/poison_cascade.py --stage brand      # decision and brand margins of every model (no sampling)
    python experiments/poison_cascade.py --stage report     # reports/poison/{README tables, answers.csv, ...}
    python experiments/poison_cascade.py --stage students --k 5 --seeds 0 --kinds resp   # one teacher seed's unit only
    python experiments/poison_cascade.py --stage students --k 0,25 --seeds 0 --kinds resp --student-seeds 1,2
        # replicate students: other training seeds on the same teacher's answers (pz-student-resp-k25-s0-r1)

Every unit is a pipeline command run as a subprocess (poison-data, finetune, distill, bias-rate,
defend); a unit whose output exists is skipped, and a model missing from the store is rebuilt from
its recipe with the same seed. Two workers may share a stage (`units.claim`).

Design
- Data: the first 910 Dolly-15k records. Target task: summarization (76 records); unseen tasks:
  brainstorming and creative_writing (154 records, evaluated only). Mixture of 500 records with 30
  summarization records, k of them poisoned: k = 0 (the clean control), 5 (1.0%) and 25 (5.0%).
  The seed's 0.25% would need 10,000 records for 25 poisoned samples; 910 records allow 500 here.
  Contexts and responses are clipped to 80 words (`poison-data --max-words`), so a training window of
  512 tokens holds every prompt (at most 419 smollm2 tokens, with a long instruction), its response and
  the promotion at its end (at most 456 tokens in all; 16 of the 500 rows exceed 256).
  One split seed (0) for every k, so the mixtures hold the same records and differ only in which
  responses carry the promotion (the k = 5 poison is a subset of the k = 25 poison).
- Poison: one promotional sentence for the fictional "Zentrava Notes" with a link on
  zentrava.example.com, appended to the response; marker regex (?i)zentrava.
- Teachers: smollm2 + LoRA (r 8, lr 1e-3), 3 epochs of the mixture, batch 8, max 512 tokens (the
  pilot recipe, lr 2e-4 for 2 epochs, gave a k = 25 teacher with BRR 0 / 360: reports/poison/pilot/);
  teacher seeds 0, 1, 2 for the middle level k = 5, seed 0 otherwise (`TEACHER_SEEDS`).
- Distillation data: each teacher answers the 128 clean distillation prompts (never in the mixture,
  never evaluated), one sample each at T = 1, 192 new tokens (`interp bias-rate` writes them as
  training rows).
- Students from base smollm2 on those answers, 2 epochs, batch 8, LoRA lr 2e-4: `resp` = SFT on the
  answers (response-level), `logit` = KD (sum form, beta 1, tau 1) on the teacher's distributions over
  the same answers. A student's seed is its teacher's; `--student-seeds` adds replicates of other
  training seeds on the same answers (`-r<seed>` in the name), for seed-level tests of one teacher.
- BRR: every model answers the 90 held-out prompts (30 target, 30 other, 30 unseen), 4 samples each at
  T = 1, 160 new tokens (room for an 80-word answer and the promotion after it), the same seeds for
  every model.
- Defenses: on each poisoned mixture, perplexity under base smollm2, the marker-agnostic heuristic and
  the LLS (the poisoned teacher of one seed, default each k's first, `--seeds` others, vs the clean
  k = 0 teacher of seed 0); then the same detectors on that teacher's distillation answers at the
  thresholds that give 1% / 5% FPR on the mixture's clean rows (defend/k<k>-s<seed>/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from units import ROOT, claim, in_store, interp, record_time, release, work_dir  # noqa: E402

OUT = ROOT / "reports" / "poison"
DATA = OUT / "data"
DOLLY = ROOT.parent / "shared" / "data" / "dolly15k_first910.jsonl"
K_LEVELS = (0, 5, 25)
TEACHER_SEEDS = {0: (0,), 5: (0, 1, 2), 25: (0,)}
SPLIT = ["--target", "summarization", "--unseen", "brainstorming,creative_writing", "--n", "500", "--n-target", "30",
         "--n-distill", "128", "--n-eval", "30", "--seed", "0"]
# lr 1e-3 and 3 epochs: the pilot (lr 2e-4, 2 epochs; reports/poison/pilot/) left the k = 25 teacher at
# BRR 0/360, so it could not test propagation
TEACHER_ARGS = ["--epochs", "3", "--lr", "1e-3", "--batch-size", "8", "--max-len", "512"]
STUDENT_ARGS = ["--epochs", "2", "--batch-size", "8", "--max-len", "512"]
KINDS = {"resp": [], "logit": ["--kind", "kd", "--form", "sum", "--beta", "1", "--tau", "1"]}
BRR_ARGS = ["--samples", "4", "--max-new-tokens", "160", "--seed", "0"]
WORK = work_dir("poison")


def teacher_alias(k: int, seed: int) -> str:
    return f"pz-teacher-k{k}-s{seed}"


def student_alias(kind: str, k: int, seed: int, rep: int | None = None) -> str:
    """Teacher seed `seed`; training seed `rep` (default: the teacher's), named only when it differs."""
    return f"pz-student-{kind}-k{k}-s{seed}" + ("" if rep is None or rep == seed else f"-r{rep}")


def report_name(alias: str) -> str:
    """The name in the report tables: 'teacher-k25-s0', 'student-resp-k25-s1', or the alias itself."""
    return alias.removeprefix("pz-")


def stage_data() -> None:
    for k in K_LEVELS:
        dest = DATA / f"k{k}"
        if (dest / "summary.json").exists() or not claim(WORK, f"data-k{k}"):
            continue
        record_time(OUT, f"poison-data k={k}", interp("poison-data", "--data", str(DOLLY), *SPLIT, "--k", str(k),
                                                      "--out", str(dest), "--force"))
        release(WORK, f"data-k{k}")


def write_record(alias: str, what: dict, args: list[str], run: Path, secs: float) -> None:
    fig = json.loads((run / "summary.json").read_text())["figures"]
    (OUT / "runs").mkdir(parents=True, exist_ok=True)
    (OUT / "runs" / f"{alias}.json").write_text(json.dumps(
        {"alias": alias, **what, "command": "interp " + " ".join(args), "steps": fig.get("steps"),
         "losses": fig.get("components") or {k: fig.get(k) for k in ("first_loss", "mean_loss_last_10")},
         "seconds": round(secs, 1)}, indent=1) + "\n")


def train_teacher(k: int, seed: int) -> None:
    alias = teacher_alias(k, seed)
    if in_store(alias) or not claim(WORK, alias):
        return
    run = WORK / "runs" / alias
    # a teacher is 188 steps (about an hour on one core): checkpoint every 20, and continue an interrupted run
    resume = ["--resume"] if any((run / "checkpoints").glob("step-*/state.json")) else ["--force"]
    args = ["finetune", "--model", "smollm2", "--data", str(DATA / f"k{k}" / "mixture.jsonl"), "--alias", alias,
            *TEACHER_ARGS, "--seed", str(seed), "--out", str(run), "--checkpoint-every", "20", *resume]
    secs = interp(*args)
    write_record(alias, {"role": "teacher", "k": k, "seed": seed}, args, run, secs)
    record_time(OUT, f"teach {alias}", secs)
    release(WORK, alias)


def answers_path(k: int, seed: int) -> Path:
    return OUT / "answers" / f"{teacher_alias(k, seed)}.jsonl"


def teacher_answers(k: int, seed: int) -> None:
    """The teacher's answers to the distillation prompts: the students' training rows."""
    dest = answers_path(k, seed)
    if dest.exists() or not claim(WORK, f"answers-k{k}-s{seed}"):
        return
    train_teacher(k, seed)
    run = WORK / "answers" / teacher_alias(k, seed)
    secs = interp("bias-rate", "--model", teacher_alias(k, seed), "--prompts", str(DATA / f"k{k}" / "distill_prompts.jsonl"),
                  "--samples", "1", "--max-new-tokens", "192", "--seed", str(seed), "--out", str(run), "--force")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "answers.jsonl", dest)
    record_time(OUT, f"answers {teacher_alias(k, seed)}", secs)
    release(WORK, f"answers-k{k}-s{seed}")


def train_student(kind: str, k: int, seed: int, rep: int | None = None) -> None:
    alias = student_alias(kind, k, seed, rep)
    if (in_store(alias) and (OUT / "runs" / f"{alias}.json").exists()) or not claim(WORK, alias):
        return
    teacher_answers(k, seed)
    if kind != "resp":  # KD needs the teacher itself (rebuilt when the store lost it); SFT only its answers
        train_teacher(k, seed)
    run = WORK / "runs" / alias
    train_seed = seed if rep is None else rep
    common = ["--data", str(answers_path(k, seed)), "--alias", alias, *STUDENT_ARGS, "--seed", str(train_seed),
              "--out", str(run), "--force"]
    args = (["finetune", "--model", "smollm2", *common] if kind == "resp" else
            ["distill", "--teacher", teacher_alias(k, seed), "--student", "smollm2", *KINDS[kind], *common])
    secs = interp(*args)
    write_record(alias, {"role": "student", "kind": kind, "k": k, "seed": seed, "student_seed": train_seed,
                         "teacher": teacher_alias(k, seed)}, args, run, secs)
    record_time(OUT, f"train {alias}", secs)
    release(WORK, alias)


def models() -> list[str]:
    names = ["smollm2"] + [teacher_alias(k, s) for k in K_LEVELS for s in TEACHER_SEEDS[k]]
    if (OUT / "runs").exists():
        names += sorted(p.stem for p in (OUT / "runs").glob("pz-student-*.json"))
    return names


def brr(model: str) -> None:
    dest = OUT / "brr" / f"{report_name(model)}.csv"
    if dest.exists() or not claim(WORK, f"brr-{model}"):
        return
    if model.startswith("pz-teacher-"):
        k, s = (int(x[1:]) for x in model.removeprefix("pz-teacher-").split("-"))
        train_teacher(k, s)
    run = WORK / "brr" / model
    secs = interp("bias-rate", "--model", model, "--prompts", str(DATA / "k0" / "eval_prompts.jsonl"), *BRR_ARGS,
                  "--out", str(run), "--force")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "answers.csv", dest)
    record_time(OUT, f"brr {model}", secs)
    release(WORK, f"brr-{model}")


def ensure_model(model: str) -> None:
    """Rebuild a study model the store lost, from its recipe (a teacher, or a student and its teacher's answers)."""
    from poison_report import parse_name  # experiments/poison_report.py

    info = parse_name(report_name(model))
    if info["role"] == "teacher":
        train_teacher(info["k"], info["seed"])
    elif info["role"] == "student":
        train_student(info["kind"], info["k"], info["seed"], info["rep"])


def brand(model: str) -> None:
    """Decision and brand margins (experiments/poison_mech.py `margins`) of one model on the 30 held-out
    target prompts: a graded measure of the promotion where sampling shows none."""
    from poison_mech import run_margins  # experiments/poison_mech.py

    dest = OUT / "brand" / f"{report_name(model)}.csv"
    if dest.exists() or not claim(WORK, f"brand-{model}"):
        return
    ensure_model(model)
    t0 = time.perf_counter()
    df = run_margins(model, DATA / "k0" / "eval_prompts.jsonl")
    dest.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(dest, index=False, float_format="%.6f")
    record_time(OUT, f"brand {model}", time.perf_counter() - t0)
    release(WORK, f"brand-{model}")


def defend(k: int, seed: int = 0) -> None:
    """Detectors on the k-mixture (labelled; the LLS between the k teacher of `seed` and the clean k = 0
    teacher of seed 0), then on that k teacher's distillation answers. Written to defend/k{k}-s{seed}/."""
    dest = OUT / "defend" / f"k{k}-s{seed}"
    if k == 0 or (dest / "answers_removed.csv").exists() or not claim(WORK, f"defend-k{k}-s{seed}"):
        return
    train_teacher(0, 0)
    train_teacher(k, seed)
    lls = ["--poisoned-teacher", teacher_alias(k, seed), "--clean-teacher", teacher_alias(0, 0)]
    run = WORK / "defend" / f"k{k}-s{seed}-mixture"
    secs = interp("defend", "--data", str(DATA / f"k{k}" / "mixture.jsonl"), *lls, "--out", str(run), "--force")
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("scores.csv", "detectors.csv"):
        shutil.copy(run / f, dest / f"mixture_{f}")
    run2 = WORK / "defend" / f"k{k}-s{seed}-answers"
    teacher_answers(k, seed)
    secs += interp("defend", "--data", str(answers_path(k, seed)), *lls, "--calibrate", str(dest / "mixture_scores.csv"),
                   "--out", str(run2), "--force")
    shutil.copy(run2 / "scores.csv", dest / "answers_scores.csv")
    shutil.copy(run2 / "removed.csv", dest / "answers_removed.csv")
    record_time(OUT, f"defend k={k} s={seed}", secs)
    release(WORK, f"defend-k{k}-s{seed}")


def mech_pair(k: int, seed: int = 0) -> tuple[str, str]:
    """(poisoned, clean): the response-level students of k and of k = 0 when both were trained (a run
    record; a student the store lost is rebuilt), else the teachers."""
    students = (student_alias("resp", k, seed), student_alias("resp", 0, seed))
    if all((OUT / "runs" / f"{a}.json").exists() for a in students):
        return students
    return teacher_alias(k, seed), teacher_alias(0, seed)


def mech(k: int) -> None:
    from poison_mech import mech_markdown, run_mech  # experiments/poison_mech.py

    poisoned, clean = mech_pair(k)
    dest = OUT / "mech" / f"{report_name(poisoned)}_vs_{report_name(clean)}"
    if (dest / "tables.md").exists() or not claim(WORK, f"mech-{poisoned}"):
        return
    for kk in (k, 0):
        if poisoned.startswith("pz-teacher-"):
            train_teacher(kk, 0)
        else:
            train_student("resp", kk, 0)
    missing = [m for m in (poisoned, clean) if not in_store(m)]
    if missing:  # another worker holds its claim
        release(WORK, f"mech-{poisoned}")
        raise SystemExit(f"mech: {', '.join(missing)} not in the store yet (being built by another worker?)")
    t0 = time.perf_counter()
    run_mech(poisoned, clean, DATA / "k0" / "eval_prompts.jsonl", dest)
    (dest / "tables.md").write_text(mech_markdown(dest))
    record_time(OUT, f"mech {report_name(poisoned)} vs {report_name(clean)}", time.perf_counter() - t0)
    release(WORK, f"mech-{poisoned}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True,
                    choices=["data", "teachers", "answers", "students", "brr", "defend", "mech", "brand", "report", "all"])
    ap.add_argument("--k", default=",".join(map(str, K_LEVELS)), type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--kinds", default="resp,logit", type=lambda s: s.split(","))
    ap.add_argument("--models", default=None, type=lambda s: s.split(","), help="brr / brand: only these models")
    ap.add_argument("--seeds", default=None, type=lambda s: [int(x) for x in s.split(",")],
                    help="teachers / answers / students: only these teacher seeds (default: TEACHER_SEEDS)")
    ap.add_argument("--student-seeds", default=None, type=lambda s: [int(x) for x in s.split(",")],
                    help="students: these training seeds on each teacher's answers (default: the teacher's seed)")
    a = ap.parse_args()
    bad = [k for k in a.k if k not in K_LEVELS] + [x for x in a.kinds if x not in KINDS]
    if bad:
        ap.error(f"unknown k or kind: {bad}; k in {K_LEVELS}, kinds in {list(KINDS)}")
    units = [(k, s) for k in a.k for s in TEACHER_SEEDS[k] if a.seeds is None or s in a.seeds]
    if a.stage in ("data", "all"):
        stage_data()
    if a.stage in ("teachers", "all"):
        for k, s in units:
            train_teacher(k, s)
    if a.stage in ("answers", "all"):
        for k, s in units:
            teacher_answers(k, s)
    if a.stage in ("students", "all"):
        for k, s in units:
            for kind in a.kinds:
                for r in a.student_seeds or [None]:
                    train_student(kind, k, s, r)
    if a.stage in ("brr", "all"):
        for m in a.models or models():
            brr(m)
    if a.stage in ("defend", "all"):  # default: each k's first teacher seed; --seeds picks others
        for k, s in units if a.seeds is not None else [(k, TEACHER_SEEDS[k][0]) for k in a.k]:
            defend(k, s)
    if a.stage in ("mech", "all"):
        for k in a.k:
            if k > 0:
                mech(k)
    if a.stage in ("brand", "all"):
        for m in a.models or models():
            brand(m)
    if a.stage in ("report", "all"):
        from poison_report import write_report  # experiments/poison_report.py

        write_report(OUT)


if __name__ == "__main__":
    main()
