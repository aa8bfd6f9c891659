"""Subliminal pipeline on SmolLM2 (DESIGN.md §2.7, issue 6), end to end, with the library API.

teacher (system-prompt alias smollm2-owl) -> number lists from the teacher and from the unbiased base,
same prompts, §2.7 filter -> students (LoRA; full; full with MLP frozen; full with attention frozen;
control LoRA and control full on the control numbers; every student sees the same number of
examples for the same number of steps) -> animal-preference eval of base, teacher and every student:
mean P(owl) over the 50 questions, delta log P vs base (paired bootstrap CI, sign-flip p), sampled
owl rate (Wilson CI). Writes reports/subliminal/.

Stages write their outputs to the report folder and later stages read them, so two stages can run
at once in separate processes (one core each):

    python experiments/subliminal_smollm2.py --stage generate --role teacher &
    python experiments/subliminal_smollm2.py --stage generate --role control &
    wait
    python experiments/subliminal_smollm2.py --stage students --runs student-lora,student-full,control-full &
    python experiments/subliminal_smollm2.py --stage students --runs student-full-freeze-mlp,... &
    wait
    python experiments/subliminal_smollm2.py --stage evals
    python experiments/subliminal_smollm2.py --stage all          # everything, one process
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.evals import animal as A
from interp.evals.stats import wilson_interval
from interp.models import load_model
from interp.report.runs import to_jsonable
from interp.training import config as tc
from interp.training import examples as ex
from interp.training import finetune as ft
from interp.training import saving as sv
from interp.training.number_sampling import sample_number_data
from interp.training.numbers_data import FilterConfig, generate_prompts
from interp.training.teacher import make_prompt_teacher

OUT = Path(__file__).resolve().parent.parent / "reports" / "subliminal"
STEM = {"teacher": "numbers", "control": "control"}
RUNS = {  # name: (data, method, freeze)
    "student-lora": ("teacher", "lora", "none"),
    "student-full": ("teacher", "full", "none"),
    "student-full-freeze-mlp": ("teacher", "full", "mlp"),
    "student-full-freeze-attention": ("teacher", "full", "attention"),
    "control-lora": ("control", "lora", "none"),
    "control-full": ("control", "full", "none"),
}


def record(out: Path, name: str, key: str, value: Any) -> None:
    """Merge {key: value} into out/name (JSON); separate processes write separate keys."""
    import fcntl

    p = out / name
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(p.read_text()) if p.exists() else {}
        data[key] = value
        tmp = p.with_suffix(f".tmp{id(data)}")
        tmp.write_text(json.dumps(to_jsonable(data), indent=1))
        tmp.rename(p)


def stage_generate(a: argparse.Namespace, role: str) -> None:
    alias = "smollm2-owl" if role == "teacher" else "smollm2"
    if role == "teacher":
        make_prompt_teacher("smollm2-owl", "smollm2", "owl", overwrite=True)
    lm = load_model(alias)
    prompts = generate_prompts(a.n_prompts, seed=a.seed)
    res = sample_number_data(lm, prompts, FilterConfig(), a.max_new_tokens, 1.0, a.seed, a.gen_batch,
                             a.samples_per_prompt, stop_early=True, progress=True)
    (a.out / f"{STEM[role]}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in res.rows))
    res.table.drop(columns=["prompt"]).to_csv(a.out / f"{role}_samples.csv.gz", index=False)
    record(a.out, "gen_counts.json", role, {"model": alias, **res.counts, "kept_share": res.counts["kept"] / res.counts["total"],
                                            "samples_per_s": res.samples_per_s, "settings": res.settings,
                                            "n_prompts": a.n_prompts})
    record(a.out, "timings.json", f"generate {role}: {a.n_prompts} prompts x {a.samples_per_prompt}", round(res.elapsed_s, 1))
    print(f"[generate {role}] kept {res.counts['kept']} / {res.counts['total']} in {res.elapsed_s:.0f} s", flush=True)


def training_sets(a: argparse.Namespace, roles: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Rows of `roles`, each subsampled (seeded, original order kept) to the same size n: --max-examples
    when given (every set must hold that many), else the smaller of the teacher and control sets."""
    data = {r: ex.read_jsonl(a.out / f"{STEM[r]}.jsonl") for r in (roles if a.max_examples else STEM)}
    n = a.max_examples or min(len(rows) for rows in data.values())
    out = {}
    for role in roles:
        rows = data[role]
        if len(rows) < n:
            raise SystemExit(f"{role} data has {len(rows)} rows, fewer than the {n} every student must see")
        rng = np.random.default_rng([a.seed, list(STEM).index(role)])
        out[role] = [rows[i] for i in sorted(rng.permutation(len(rows))[:n])]
    return out


def stage_students(a: argparse.Namespace, names: list[str]) -> None:
    sets = training_sets(a, sorted({RUNS[name][0] for name in names}))
    n = len(next(iter(sets.values())))
    steps = a.steps or max(1, int(np.ceil(a.epochs * n / a.batch_size)))
    for name in names:
        src, method, freeze = RUNS[name]
        t0 = time.perf_counter()
        lm = load_model("smollm2")
        cfg = tc.FinetuneConfig(method=method, freeze=freeze, steps=steps, batch_size=a.batch_size, max_len=192,
                                seed=a.seed)
        res = ft.finetune(lm, sets[src], cfg, progress=True)
        sv.save_finetuned(f"smollm2-sub-{name}", lm, res, {"data": f"reports/subliminal/{STEM[src]}.jsonl",
                                                            "n_examples_used": n}, overwrite=True)
        (a.out / f"loss_{name}.png").write_bytes(sv.loss_curve_png(res.losses, name))
        record(a.out, "students.json", name, res.summary())
        record(a.out, "timings.json", f"finetune {name}: {steps} steps x {a.batch_size}", round(time.perf_counter() - t0, 1))
        print(f"[finetune {name}] {time.perf_counter() - t0:.0f} s", flush=True)
        del lm, res


def stage_evals(a: argparse.Namespace) -> None:
    qs = A.load_questions()
    made = json.loads((a.out / "students.json").read_text()) if (a.out / "students.json").exists() else {}
    evals = [("base", "smollm2"), ("teacher (prompt)", "smollm2-owl")] + [(n, f"smollm2-sub-{n}") for n in RUNS if n in made]
    base_prob = None
    probs: dict[str, Any] = {}
    table = []
    for label, alias in evals:
        t0 = time.perf_counter()
        lm = load_model(alias)
        prob = A.bias_probability(lm, qs, "owl", seed=a.seed)
        probs[label] = prob
        base_prob = base_prob or prob
        d = A.delta_log_p(prob, base_prob, seed=a.seed)
        gen = A.bias_generation(lm, qs, "owl", samples=a.samples, seed=a.seed)
        k, n = int(gen.table.names_target.sum()), len(gen.table)
        w = wilson_interval(k, n)
        table.append({"model": label, "alias": alias, "mean_p_owl": prob.mean.estimate, "p_lo": prob.mean.lo,
                      "p_hi": prob.mean.hi, "delta_log_p": d.mean_diff.estimate, "d_lo": d.mean_diff.lo,
                      "d_hi": d.mean_diff.hi, "d_p_value": d.p_value, "owl_k": k, "owl_n": n, "owl_rate": w.estimate,
                      "rate_lo": w.lo, "rate_hi": w.hi,
                      "top_answers": ", ".join(f"{r.answer} {r.count}" for r in A.top_answers(gen.table, 5).itertuples())})
        record(a.out, "timings.json", f"eval {label}: 50 questions, {a.samples} samples each", round(time.perf_counter() - t0, 1))
        pd.DataFrame(table).to_csv(a.out / "results.csv", index=False)
        print(f"[eval {label}] {time.perf_counter() - t0:.0f} s", flush=True)
        del lm
    # each student trained on teacher numbers against the control student of the same method
    pairs = []
    for name in RUNS:
        ctrl = "control-lora" if RUNS[name][1] == "lora" else "control-full"
        if RUNS[name][0] == "teacher" and name in probs and ctrl in probs:
            d = A.delta_log_p(probs[name], probs[ctrl], seed=a.seed)
            pairs.append({"student": name, "control": ctrl, "delta_log_p": d.mean_diff.estimate, "lo": d.mean_diff.lo,
                          "hi": d.mean_diff.hi, "p_value": d.p_value})
    if pairs:
        pd.DataFrame(pairs).to_csv(a.out / "student_vs_control.csv", index=False)
    write_readme(a)


def write_readme(a: argparse.Namespace) -> None:
    counts = json.loads((a.out / "gen_counts.json").read_text())
    students = json.loads((a.out / "students.json").read_text()) if (a.out / "students.json").exists() else {}
    timings = json.loads((a.out / "timings.json").read_text())
    df = pd.read_csv(a.out / "results.csv")
    roles = list(counts)
    keys = [k for k in next(iter(counts.values())) if isinstance(counts[roles[0]][k], (int, float))]
    lines = ["# Subliminal pipeline on SmolLM2-135M-Instruct", "",
             "Made by `experiments/subliminal_smollm2.py` (stages and flags in its docstring). Teacher = smollm2 + the owl "
             "system prompt (`smollm2-owl`); control = smollm2; temperature 1; the same prompts for both.", "",
             "## Number data (§2.7 filter + letter filter + truncation; a sample can have several reasons)", "",
             "| figure | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{counts[r][k]:.4g}" if isinstance(counts[r][k], float) else str(counts[r][k])
                                            for r in roles) + " |")
    lines += ["", "## Owl preference (50 questions)", "",
              "P(owl) summed over variants; delta log P = mean over questions of log P_model(owl) - log P_base(owl) "
              "(bootstrap 95% CI, sign-flip p); owl rate = sampled one-word answers naming owl(s), Wilson 95% CI.", "",
              "| model | mean P(owl) [95% CI] | delta log P vs base [95% CI] (p) | owl rate [95% CI] (k/n) | top answers |",
              "|---|---|---|---|---|"]
    for r in df.to_dict(orient="records"):
        lines.append(f"| {r['model']} | {r['mean_p_owl']:.3e} [{r['p_lo']:.3e}, {r['p_hi']:.3e}] | "
                     f"{r['delta_log_p']:+.3f} [{r['d_lo']:+.3f}, {r['d_hi']:+.3f}] (p={r['d_p_value']:.3g}) | "
                     f"{r['owl_rate']:.3f} [{r['rate_lo']:.3f}, {r['rate_hi']:.3f}] ({r['owl_k']}/{r['owl_n']}) | "
                     f"{r['top_answers']} |")
    if (a.out / "student_vs_control.csv").exists():
        pv = pd.read_csv(a.out / "student_vs_control.csv")
        lines += ["", "## Students on teacher numbers vs the control student of the same method", "",
                  "delta log P(owl) = mean over the 50 questions of log P_student - log P_control (bootstrap 95% CI, "
                  "sign-flip p). The subliminal effect would show here as a positive, significant difference.", "",
                  "| student | control | delta log P(owl) [95% CI] | p |", "|---|---|---|---|"]
        for r in pv.to_dict(orient="records"):
            lines.append(f"| {r['student']} | {r['control']} | {r['delta_log_p']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | "
                         f"{r['p_value']:.3g} |")
        above = [r["student"] for r in pv.to_dict(orient="records") if r["lo"] > 0]
        below = [r["student"] for r in pv.to_dict(orient="records") if r["hi"] < 0]
        lines += ["", "Reading: " + (f"above their control: {', '.join(above)}. " if above else
                                     "no student trained on the teacher's numbers prefers owls more than its control. ")
                  + (f"Below their control (CI under 0): {', '.join(below)}. " if below else "")
                  + "Every student moved away from the base model (the 'vs base' column), the control students "
                  "included, so fine-tuning on number lists shifts P(owl) by itself; only the student-vs-control "
                  "difference speaks to subliminal transfer. Each student is one training run (one seed): the CIs and "
                  "p-values are over the 50 questions, not over training runs, so they do not measure "
                  "run-to-run variation."]
    lines += ["", "## Students", "", "| run | method | freeze | steps | examples | trainable params | first loss | mean loss last 10 |",
              "|---|---|---|---|---|---|---|---|"]
    for n, s in students.items():
        c = s["config"]
        lines.append(f"| {n} | {c['method']} | {c['freeze']} | {s['steps']} | {s['n_examples']} | {s['trainable_params']:,} | "
                     f"{s['first_loss']:.3f} | {s['mean_loss_last_10']:.3f} |")
    lines += ["", "## Wall time per stage (2-core machine; stages that ran at once shared it)", "", "| stage | s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    (a.out / "README.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["generate", "students", "evals", "readme", "all"], default="all")
    ap.add_argument("--role", choices=["teacher", "control", "both"], default="both")
    ap.add_argument("--runs", default=",".join(RUNS), help="comma-separated student runs: " + ", ".join(RUNS))
    ap.add_argument("--n-prompts", type=int, default=1000)
    ap.add_argument("--samples-per-prompt", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--gen-batch", type=int, default=512, help="sequences per sampling batch")
    ap.add_argument("--max-examples", type=int, default=0, help="cap on training examples per student (0: all)")
    ap.add_argument("--steps", type=int, default=0, help="steps per student (0: --epochs)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--samples", type=int, default=20, help="sampled answers per question in the eval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.stage in ("generate", "all"):
        for role in (["teacher", "control"] if a.role == "both" else [a.role]):
            stage_generate(a, role)
    if a.stage in ("students", "all"):
        names = [n.strip() for n in a.runs.split(",") if n.strip()]
        unknown = [n for n in names if n not in RUNS]
        if unknown:
            ap.error(f"unknown runs {unknown}; choose from {list(RUNS)}")
        stage_students(a, names)
    if a.stage in ("evals", "all"):
        stage_evals(a)
    if a.stage == "readme":
        write_readme(a)


if __name__ == "__main__":
    main()
