"""Subliminal pipeline on SmolLM2 (DESIGN.md §2.7, issue 6), end to end, with the library API.

teacher (system-prompt alias smollm2-owl) -> number lists (teacher and unbiased control, same prompts,
§2.7 filter) -> students (LoRA; full; full with MLP frozen; full with attention frozen; control LoRA
and control full on the control numbers) -> animal-preference eval of base, teacher and every
student: mean P(owl) over the 50 questions, delta log P vs base (paired bootstrap CI, sign-flip p),
sampled owl rate (Wilson CI). Writes reports/subliminal/: README.md, results.csv, gen_counts.json,
timings.json, numbers.jsonl / control.jsonl, loss curves.

    python experiments/subliminal_smollm2.py --n-prompts 1500 --steps 100 --samples 20   # the full study scale
    python experiments/subliminal_smollm2.py --n-prompts 64 --steps 8 --samples 2        # what fits a shared 2-core box
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from interp.evals import animal as A
from interp.evals.stats import wilson_interval
from interp.models import load_model
from interp.report.runs import to_jsonable
from interp.training import finetune as ft
from interp.training.generate import chat_prompt_ids, sample
from interp.training.numbers_data import FilterConfig, filter_samples, generate_prompts
from interp.training.teacher import make_prompt_teacher

OUT = Path(__file__).resolve().parent.parent / "reports" / "subliminal"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--gen-batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def tick(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)
        (out / "timings.json").write_text(json.dumps(timings, indent=1))
        print(f"[{name}] {timings[name]} s", flush=True)

    # 1. teacher = base + trait system prompt
    make_prompt_teacher("smollm2-owl", "smollm2", "owl", overwrite=True)
    base = load_model("smollm2")
    teacher = load_model("smollm2-owl")

    # 2. numbers from the teacher and from the unbiased base, same prompts
    prompts = generate_prompts(a.n_prompts, seed=a.seed)
    counts, data = {}, {}
    for role, lm in (("teacher", teacher), ("control", base)):
        t0 = time.perf_counter()
        got = sample(lm, chat_prompt_ids(lm, prompts, system=lm.system_prompt), a.max_new_tokens, 1.0, a.seed,
                     a.gen_batch, progress=True, description=f"numbers: {role}")
        tick(f"generate {role} ({a.n_prompts} prompts)", t0)
        rep = filter_samples([s.text for s in got], [s.token_probs for s in got], FilterConfig(),
                             [s.finished for s in got])
        counts[role] = {**rep.counts, "samples_per_s": round(a.n_prompts / timings[f"generate {role} ({a.n_prompts} prompts)"], 3)}
        rows = [{"prompt": p, "completion": s.text.strip(), "teacher": lm.name}
                for p, s, k in zip(prompts, got, rep.kept) if k]
        data[role] = rows
        (out / f"{'numbers' if role == 'teacher' else 'control'}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
        pd.DataFrame({"completion": [s.text for s in got], "reasons": ["; ".join(r) for r in rep.reasons]}).to_csv(
            out / f"{role}_samples.csv", index=False)
    (out / "gen_counts.json").write_text(json.dumps(counts, indent=1))

    # 3. students
    runs = [("student-lora", "teacher", "lora", "none"), ("student-full", "teacher", "full", "none"),
            ("student-full-freeze-mlp", "teacher", "full", "mlp"),
            ("student-full-freeze-attention", "teacher", "full", "attention"),
            ("control-lora", "control", "lora", "none"), ("control-full", "control", "full", "none")]
    made = []
    for name, src, method, freeze in runs:
        if not data[src]:
            print(f"skip {name}: no kept {src} samples", flush=True)
            continue
        t0 = time.perf_counter()
        lm = load_model("smollm2")
        cfg = ft.FinetuneConfig(method=method, freeze=freeze, steps=a.steps, batch_size=a.batch_size,
                                max_len=192, seed=a.seed)
        res = ft.finetune(lm, data[src], cfg, progress=True)
        alias = f"smollm2-owl-{name}"
        ft.save_finetuned(alias, lm, res, {"data": f"reports/subliminal/{src}"}, overwrite=True)
        (out / f"loss_{name}.png").write_bytes(ft.loss_curve_png(res.losses, name))
        tick(f"finetune {name} ({a.steps} steps)", t0)
        made.append((name, alias, res.summary()))
        del lm, res

    # 4. evals
    qs = A.load_questions()
    evals = [("base", "smollm2"), ("teacher (prompt)", "smollm2-owl")] + [(n, al) for n, al, _ in made]
    base_prob = None
    table = []
    for label, alias in evals:
        t0 = time.perf_counter()
        lm = load_model(alias)
        prob = A.bias_probability(lm, qs, "owl", seed=a.seed)
        if base_prob is None:
            base_prob = prob
        d = A.delta_log_p(prob, base_prob, seed=a.seed)
        row = {"model": label, "alias": alias, "mean_p_owl": prob.mean.estimate, "p_lo": prob.mean.lo,
               "p_hi": prob.mean.hi, "delta_log_p": d.mean_diff.estimate, "d_lo": d.mean_diff.lo,
               "d_hi": d.mean_diff.hi, "d_p_value": d.p_value}
        if a.samples:
            gen = A.bias_generation(lm, qs, "owl", samples=a.samples, seed=a.seed)
            k, n = int(gen.table.names_target.sum()), len(gen.table)
            w = wilson_interval(k, n)
            row.update({"owl_k": k, "owl_n": n, "owl_rate": w.estimate, "rate_lo": w.lo, "rate_hi": w.hi,
                        "top_answers": ", ".join(f"{r.answer} {r.count}" for r in A.top_answers(gen.table, 5).itertuples())})
        table.append(row)
        tick(f"eval {label}", t0)
        pd.DataFrame(table).to_csv(out / "results.csv", index=False)
        del lm
    (out / "students.json").write_text(json.dumps(to_jsonable({n: s for n, _, s in made}), indent=1))
    write_readme(out, a, counts, pd.DataFrame(table), timings, made)


def write_readme(out: Path, a: argparse.Namespace, counts: dict, df: pd.DataFrame, timings: dict, made: list) -> None:
    lines = ["# Subliminal pipeline on SmolLM2-135M-Instruct (reduced scale)", "",
             f"Command: `python experiments/subliminal_smollm2.py --n-prompts {a.n_prompts} --steps {a.steps} "
             f"--samples {a.samples} --batch-size {a.batch_size} --max-new-tokens {a.max_new_tokens}`", "",
             "## Number data (teacher = smollm2 + owl system prompt; control = smollm2), temperature 1", "",
             "| | " + " | ".join(counts) + " |", "|---|" + "---|" * len(counts)]
    for k in next(iter(counts.values())):
        lines.append(f"| {k} | " + " | ".join(str(c[k]) for c in counts.values()) + " |")
    lines += ["", "## Owl preference (50 questions)", "",
              "P(owl) summed over variants; delta log P = mean over questions of log P_model - log P_base "
              "(bootstrap 95% CI, sign-flip p); owl rate = sampled answers naming owl(s), Wilson 95% CI.", "",
              "| model | mean P(owl) [95% CI] | delta log P vs base [95% CI] (p) | owl rate [95% CI] (k/n) | top answers |",
              "|---|---|---|---|---|"]
    for r in df.to_dict(orient="records"):
        rate = (f"{r['owl_rate']:.3f} [{r['rate_lo']:.3f}, {r['rate_hi']:.3f}] ({r['owl_k']}/{r['owl_n']})"
                if "owl_rate" in r else "-")
        lines.append(f"| {r['model']} | {r['mean_p_owl']:.3e} [{r['p_lo']:.3e}, {r['p_hi']:.3e}] | "
                     f"{r['delta_log_p']:+.3f} [{r['d_lo']:+.3f}, {r['d_hi']:+.3f}] (p={r['d_p_value']:.3g}) | {rate} | "
                     f"{r.get('top_answers', '')} |")
    lines += ["", "## Students", "", "| run | steps | examples | first loss | mean loss last 10 |", "|---|---|---|---|---|"]
    for n, _, s in made:
        lines.append(f"| {n} | {s['steps']} | {s['n_examples']} | {s['first_loss']:.3f} | {s['mean_loss_last_10']:.3f} |")
    lines += ["", "## Wall time per stage (shared 2-core machine, other jobs running)", "", "| stage | s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    (out / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
