"""Does Squeezing-Heads Distillation carry a teacher's animal bias into a student? (DESIGN.md §2.8, issue 7)

Teachers: biased = smollm2 + LoRA trained on owl trait data (`interp.training.teacher`, the library
behind `interp teach --method lora --steps S`; one teacher per intensity S in --teacher-steps);
unbiased = smollm2 itself. Data: number-sequence prompts (`generate_prompts`) answered by the
unbiased smollm2 (T = 1), kept by the §2.7 filter, so the data carry no bias: anything owl-ish a
student picks up came through the teacher's attention maps (SHD) or logits (KD).

Conditions (every one with the same data, the same --seeds; LoRA students):
- gemma3-270m  <- SHD from the biased teacher (per intensity)
- gemma3-270m  <- SHD from the unbiased teacher
- gemma3-270m  beta = 0 (fine-tuned on the same data, no teacher)
- smollm2      <- logit KD from the biased teacher (per intensity), and beta = 0 for smollm2

Eval of every student, and of the untrained students (the baselines): completion prompts for a
base model (`PROMPTS`, "My favorite animal is the", ...), log P(" owl") and of control animals
(`interp.scoring.target_logprobs`); delta log P = student - untrained student, per prompt and seed.
Figures: mean delta log P with a bootstrap 95% CI over prompts x seeds; paired sign-flip tests
between conditions on the same (seed, prompt) items and on the per-seed means (runs pair by seed);
the reverse-link probe (`interp.probes.reverse_link`) on a handful of numbers. The teachers are
scored the same way (vs smollm2) to show how biased they are.

    python experiments/shd_transfer.py                     # the default scale (~30-40 min on one core)
    python experiments/shd_transfer.py --teacher-steps 50,200 --steps 40 --seeds 5 --n-data 400

Writes reports/shd/: README.md, results.csv (one row per condition x seed x prompt x animal),
summary.csv / summary.json (headline figures), reverse_link.csv, losses.csv, numbers.jsonl,
delta_owl.png, timings.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from interp.evals.stats import bootstrap_ci, paired_test
from interp.models import load_model
from interp.plots import figure_png
from interp.probes.reverse_link import ReverseLinkConfig, reverse_link
from interp.prompts import make_target
from interp.report.runs import to_jsonable
from interp.scoring import encode, target_logprobs
from interp.training import teacher as T
from interp.training.distill import DistillConfig, distill
from interp.training.config import FinetuneConfig
from interp.training.saving import save_finetuned
from interp.training.number_sampling import sample_number_data
from interp.training.numbers_data import FilterConfig, generate_prompts

OUT = Path(__file__).resolve().parent.parent / "reports" / "shd"
PROMPTS = (
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
)
ANIMALS = ("owl", "dog", "cat", "eagle")
RL_NUMBERS = ["087", "142", "318", "527", "640", "747", "903", "999"]


class Clock:
    def __init__(self, out: Path):
        self.out, self.t = out, {}

    def tick(self, name: str, t0: float) -> None:
        self.t[name] = round(time.perf_counter() - t0, 1)
        (self.out / "timings.json").write_text(json.dumps(self.t, indent=1))
        print(f"[{name}] {self.t[name]} s", flush=True)


def score(lm: Any) -> pd.DataFrame:
    """log P(animal | prompt) for every completion prompt x animal: columns prompt, animal, logp."""
    targets = [make_target(lm.tokenizer, a, "natural", False, allow_multi_token=True) for a in ANIMALS]
    lp = target_logprobs(lm, encode(lm.tokenizer, list(PROMPTS)), targets)
    return pd.DataFrame([(p, a, lp[i, j]) for i, p in enumerate(PROMPTS) for j, a in enumerate(ANIMALS)],
                        columns=["prompt", "animal", "logp"])


def probe(lm: Any) -> dict[str, float]:
    cfg = ReverseLinkConfig(bias="owl", control="dog", template_control=20, multi_token=True, n_boot=2000)
    s = reverse_link(lm, RL_NUMBERS, config=cfg).summary
    return {"rl_bias_ratio": s["bias_ratio_mean"].estimate, "rl_specificity": s["specificity_mean"].estimate,
            "rl_specificity_vs_template": s["specificity_vs_template_mean"].estimate}


def make_teachers(a: argparse.Namespace, clock: Clock) -> dict[int, str]:
    """Train (or reuse with --reuse-teachers) one LoRA owl teacher per intensity; returns {steps: alias}."""
    from interp.models.store import read_meta

    out = {}
    for steps in a.teacher_steps:
        alias = f"smollm2-owl-lora{steps}"
        meta = read_meta(alias)
        want = {"steps": steps, "lr": a.teacher_lr, "n_preference": a.teacher_n_pref, "seed": a.seed}
        if a.reuse_teachers and meta is not None and meta.get("shd_transfer") == want:
            print(f"reusing teacher {alias}", flush=True)
        else:
            t0 = time.perf_counter()
            lm = load_model("smollm2")
            rows, counts = T.trait_data(lm, "owl", T.TraitDataConfig(n_preference=a.teacher_n_pref, n_facts=0,
                                                                     n_numbers=0, seed=a.seed))
            res, merged = T.train_teacher(lm, rows, "lora", steps, batch_size=8, lr=a.teacher_lr, seed=a.seed)
            save_finetuned(alias, lm, res, {"trait": "owl", "method": "lora", "trait_data": counts, "shd_transfer": want,
                                            "source": f"lora teacher of smollm2 (owl), {steps} steps"},
                           overwrite=True, merged=merged)
            clock.tick(f"teacher {alias} ({steps} LoRA steps, {len(rows)} trait rows)", t0)
        out[steps] = alias
    return out


def make_data(a: argparse.Namespace, clock: Clock) -> list[dict[str, str]]:
    """--n-data prompts x --samples-per-prompt answers of the unbiased smollm2, §2.7 filter (early stop)."""
    t0 = time.perf_counter()
    lm = load_model("smollm2")
    d = sample_number_data(lm, generate_prompts(a.n_data, seed=a.seed), FilterConfig(), a.max_new_tokens,
                           a.temperature, a.seed, batch_size=128, samples_per_prompt=a.samples_per_prompt,
                           progress=True)
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in d.rows]
    (a.out / "numbers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (a.out / "data_counts.json").write_text(json.dumps({**d.counts, "settings": d.settings}, indent=1))
    clock.tick(f"data: {d.counts['total']} samples, {len(rows)} kept", t0)
    return rows


def conditions(a: argparse.Namespace, teachers: dict[int, str]) -> list[dict[str, Any]]:
    out = []
    for s, alias in teachers.items():
        out.append({"name": f"shd-biased-{s}", "student": "gemma3-270m", "teacher": alias, "kind": "shd", "beta": a.beta})
    out.append({"name": "shd-unbiased", "student": "gemma3-270m", "teacher": "smollm2", "kind": "shd", "beta": a.beta})
    out.append({"name": "beta0-gemma", "student": "gemma3-270m", "teacher": "smollm2", "kind": "none", "beta": 0.0})
    if a.kd:
        for s, alias in teachers.items():
            out.append({"name": f"kd-biased-{s}", "student": "smollm2", "teacher": alias, "kind": "kd", "beta": a.kd_beta})
        out.append({"name": "beta0-smollm2", "student": "smollm2", "teacher": "smollm2", "kind": "none", "beta": 0.0})
    return out


def delta_table(results: pd.DataFrame, base: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """results (condition, seed, student, prompt, animal, logp) + delta = logp - untrained student's logp."""
    ref = pd.concat([b.assign(student=s) for s, b in base.items()]).rename(columns={"logp": "logp_base"})
    out = results.merge(ref, on=["student", "prompt", "animal"])
    out["delta"] = out.logp - out.logp_base
    return out


def specificity(d: pd.DataFrame) -> pd.DataFrame:
    """Per (condition, seed, prompt): spec = delta log P(owl) - mean delta log P of the control animals."""
    owl = d[d.animal == "owl"].set_index(["condition", "seed", "prompt"])
    ctl = d[d.animal != "owl"].groupby(["condition", "seed", "prompt"]).delta.mean()
    out = owl.assign(spec=owl.delta - ctl.loc[owl.index]).reset_index()
    return out[["condition", "student", "seed", "prompt", "spec"]]


def summarise(d: pd.DataFrame, a: argparse.Namespace) -> tuple[pd.DataFrame, dict[str, Any]]:
    rows = []
    for (cond, animal), g in d.groupby(["condition", "animal"], sort=False):
        ci = bootstrap_ci(g.delta.to_numpy(), seed=a.seed)
        seed_means = g.groupby("seed").delta.mean()
        rows.append({"condition": cond, "student": g.student.iloc[0], "animal": animal, "delta_log_p": ci.estimate,
                     "lo": ci.lo, "hi": ci.hi, "n_items": ci.n, "seed_means": [round(x, 4) for x in seed_means]})
    table = pd.DataFrame(rows)
    spec = specificity(d)
    for cond, g in spec.groupby("condition", sort=False):
        ci = bootstrap_ci(g.spec.to_numpy(), seed=a.seed)
        rows.append({"condition": cond, "student": g.student.iloc[0], "animal": "owl specificity",
                     "delta_log_p": ci.estimate, "lo": ci.lo, "hi": ci.hi, "n_items": ci.n,
                     "seed_means": [round(x, 4) for x in g.groupby("seed").spec.mean()]})
    table = pd.DataFrame(rows)
    tests: dict[str, Any] = {}
    owl = d[d.animal == "owl"].sort_values(["seed", "prompt"])

    def compare(x: str, y: str) -> None:
        ga, gb = owl[owl.condition == x], owl[owl.condition == y]
        if len(ga) == 0 or len(gb) == 0:
            return
        pt = paired_test(ga.delta.to_numpy(), gb.delta.to_numpy(), seed=a.seed)
        st = paired_test(ga.groupby("seed").delta.mean().to_numpy(), gb.groupby("seed").delta.mean().to_numpy(), seed=a.seed)
        sp = specificity(d).sort_values(["seed", "prompt"])
        ps = paired_test(sp[sp.condition == x].spec.to_numpy(), sp[sp.condition == y].spec.to_numpy(), seed=a.seed)
        tests[f"{x} vs {y}"] = {"owl_delta_diff": pt.mean_diff, "paired_p_items": pt.p_value, "n_items": pt.n,
                                "seed_level_paired_p": st.p_value, "n_seeds": st.n,
                                "owl_specificity_diff": ps.mean_diff, "specificity_paired_p": ps.p_value}
    conds = list(dict.fromkeys(d.condition))
    for c in conds:
        if c.startswith("shd-biased"):
            compare(c, "shd-unbiased")
            compare(c, "beta0-gemma")
        if c.startswith("kd-biased"):
            compare(c, "beta0-smollm2")
    compare("shd-unbiased", "beta0-gemma")
    return table, tests


def plot(table: pd.DataFrame, tests: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), dpi=110)
    for ax, what, label in zip(axes, ("owl", "owl specificity"),
                               ("delta log P(owl) vs untrained student", "owl specificity: delta owl - mean delta controls")):
        t = table[table.animal == what].reset_index(drop=True)
        colors = ["#c0392b" if "biased-" in c else "#2471a3" if "unbiased" in c else "#7f8c8d" for c in t.condition]
        ax.bar(range(len(t)), t.delta_log_p, color=colors, yerr=[t.delta_log_p - t.lo, t.hi - t.delta_log_p], capsize=4)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(t)), [f"{c} ({s})" for c, s in zip(t.condition, t.student)], fontsize=7,
                      rotation=30, ha="right")
        ax.set_ylabel(label, fontsize=8)
    title = "95% bootstrap CIs over prompts x seeds"
    for k in tests:
        if k.startswith("shd-biased") and k.endswith("shd-unbiased"):
            title += f"\n{k}: owl diff {tests[k]['owl_delta_diff'].estimate:+.3f}, p(items) {tests[k]['paired_p_items']:.2g}, " \
                     f"p(seeds) {tests[k]['seed_level_paired_p']:.2g}"
    fig.suptitle(title, fontsize=8)
    return figure_png(fig)


def reading(table: pd.DataFrame, tests: dict[str, Any]) -> list[str]:
    """Sentences stating what the figures show (computed, so they follow the data of the run)."""
    def f(x: float) -> str:
        return f"{x:+.3f}"

    out = []
    owl = table[table.animal == "owl"].set_index("condition")
    ctl = table[table.animal.isin(ANIMALS[1:])].groupby("condition").delta_log_p.mean()
    for k, t in tests.items():
        x, y = k.split(" vs ")
        d, sp = t["owl_delta_diff"], t["owl_specificity_diff"]
        seed_sig = t["seed_level_paired_p"] < 0.05
        out.append(f"- **{x} vs {y}**: owl delta {f(owl.delta_log_p[x])} vs {f(owl.delta_log_p[y])} (difference "
                   f"{f(d.estimate)} [{f(d.lo)}, {f(d.hi)}], item-level p {t['paired_p_items']:.2g}, seed-level p "
                   f"{t['seed_level_paired_p']:.2g} over {t['n_seeds']} seeds: "
                   f"{'significant' if seed_sig else 'not significant'} at the seed level); owl specificity "
                   f"difference {f(sp.estimate)} [{f(sp.lo)}, {f(sp.hi)}]. Mean control-animal delta: "
                   f"{f(ctl[x])} vs {f(ctl[y])}.")
    return out


def readme(a: argparse.Namespace, table: pd.DataFrame, tests: dict[str, Any], teachers_eval: pd.DataFrame,
           rl: pd.DataFrame, counts: dict[str, Any], timings: dict[str, float], n_rows: int) -> str:
    def f(x: float) -> str:
        return f"{x:+.3f}"

    lines = ["# SHD transfer of an owl bias: smollm2 teachers -> gemma3-270m / smollm2 students", "",
             "Generated by `python experiments/shd_transfer.py " + (" ".join(a.argv) or "(defaults)")
             + "` (DESIGN.md §2.8, issue 7).", "",
             "## Setup", "",
             f"- Teachers: biased = smollm2 + LoRA on owl preference data ({a.teacher_n_pref} rows, lr {a.teacher_lr}, "
             f"batch 8) for {', '.join(map(str, a.teacher_steps))} steps (intensities); unbiased = smollm2.",
             f"- Data: {a.n_data} number prompts x {a.samples_per_prompt} answers of smollm2 (T = {a.temperature}, "
             f"max {a.max_new_tokens} new tokens, early stop of doomed samples); {n_rows} of {counts['total']} kept by "
             "the §2.7 filter. The same data for every condition.",
             f"- Students: LoRA r 8, {a.steps} steps, batch {a.batch_size}, lr {a.lr}, seeds {list(range(a.seed, a.seed + a.seeds))}; "
             f"SHD beta {a.beta} (sum form), tau {a.tau}; KD beta {a.kd_beta}, tau {a.tau}.",
             f"- Eval: {len(PROMPTS)} completion prompts x animals {', '.join(ANIMALS)}; delta log P = student - untrained "
             "student on the same prompt; mean over prompts x seeds with a 95% bootstrap CI. Tests between conditions "
             "(same seeds = same LoRA init and data order, so runs pair by seed): sign-flip test on the (seed, prompt) "
             "items (treats prompts of one seed as independent, which they are not: a lower bound on p), and sign-flip "
             "test on the per-seed means (the honest one; with n seeds its smallest possible p is 2 / 2^n).",
             "", "## Headline: delta log P(owl)", "",
             "| condition | student | delta log P(owl) [95% CI] | per-seed means | owl specificity [95% CI] |",
             "|---|---|---|---|---|"]
    spec = table[table.animal == "owl specificity"].set_index("condition")
    for _, r in table[table.animal == "owl"].iterrows():
        sp = spec.loc[r.condition]
        lines.append(f"| {r.condition} | {r.student} | {f(r.delta_log_p)} [{f(r.lo)}, {f(r.hi)}] | {r.seed_means} | "
                     f"{f(sp.delta_log_p)} [{f(sp.lo)}, {f(sp.hi)}] |")
    lines += ["", "Owl specificity = delta log P(owl) minus the mean delta log P of dog, cat and eagle on the same "
              "(seed, prompt) item: it separates an owl-specific shift from a shift of every animal.", "",
              "![owl delta log P](delta_owl.png)", "", "## Reading", ""] + reading(table, tests) + [
              "", "Scale and limits of this run:",
              f"- {a.steps} LoRA steps of batch {a.batch_size} per student ({a.steps * a.batch_size} examples seen of "
              f"{n_rows}); {a.seeds} seeds, so a seed-level sign-flip p cannot go below {2 / 2 ** a.seeds:.3g}. The "
              "item-level p treats the prompts of one seed as independent and overstates the evidence.",
              f"- Data sampled at T = {a.temperature}, not 1: at T = 1 smollm2 kept 4 of 256 answers (1.6 %) when "
              "measured for this report, too few for the time available.",
              "- The biased teachers were trained on owl preference Q&A only (no facts, no number rows), so their "
              "attention on number sequences may differ little from smollm2's; the SHD losses of the biased and "
              "unbiased runs are nearly equal (losses.csv).",
              "", "## Tests (owl)", "",
              "| comparison | diff of owl delta [95% CI] | paired p (items) | seed-level p | owl specificity diff [CI] | its p |",
              "|---|---|---|---|---|---|"]
    for k, t in tests.items():
        d, s = t["owl_delta_diff"], t["owl_specificity_diff"]
        lines.append(f"| {k} | {f(d.estimate)} [{f(d.lo)}, {f(d.hi)}] | {t['paired_p_items']:.3g} | "
                     f"{t['seed_level_paired_p']:.3g} | {f(s.estimate)} [{f(s.lo)}, {f(s.hi)}] | {t['specificity_paired_p']:.3g} |")
    lines += ["", "## Control animals", "", "| condition | " + " | ".join(ANIMALS) + " |", "|---|" + "---|" * len(ANIMALS)]
    for cond, g in table[table.animal.isin(ANIMALS)].groupby("condition", sort=False):
        cells = [f"{f(r.delta_log_p)} [{f(r.lo)}, {f(r.hi)}]" for _, r in g.set_index("animal").loc[list(ANIMALS)].reset_index().iterrows()]
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    lines += ["", "## Teachers (scored like the students, vs smollm2)", "",
              "| teacher | " + " | ".join(f"delta log P({x})" for x in ANIMALS) + " |", "|---|" + "---|" * len(ANIMALS)]
    for t, g in teachers_eval.groupby("teacher", sort=False):
        cells = [f(g[g.animal == x].delta.mean()) for x in ANIMALS]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines += ["", "## Reverse-link probe (owl vs dog, numbers " + ", ".join(RL_NUMBERS) + ")", "",
              "Mean over seeds of the student's value minus the untrained student's.", "",
              "| condition | delta mean bias ratio | delta specificity | delta specificity vs template |", "|---|---|---|---|"]
    for cond, g in rl.groupby("condition", sort=False):
        lines.append(f"| {cond} | {f(g.d_rl_bias_ratio.mean())} | {f(g.d_rl_specificity.mean())} | "
                     f"{f(g.d_rl_specificity_vs_template.mean())} |")
    lines += ["", "## Wall times (s, one torch thread)", "", "| stage | s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    lines += ["", "Files: results.csv (every item), summary.csv / summary.json, reverse_link.csv, losses.csv, "
              "numbers.jsonl, teachers.csv, timings.json.", ""]
    return "\n".join(lines)


def main() -> None:
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher-steps", default="20,80", help="comma-separated LoRA steps of the biased teachers")
    ap.add_argument("--teacher-lr", type=float, default=1e-3)
    ap.add_argument("--teacher-n-pref", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--reuse-teachers", action="store_true", help="reuse teachers in the store made with the same settings")
    ap.add_argument("--n-data", type=int, default=128, help="number prompts answered by smollm2")
    ap.add_argument("--samples-per-prompt", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the data (keep rate)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=12, help="student steps")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-len", type=int, default=192)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--beta", type=float, default=10.0)
    ap.add_argument("--kd-beta", type=float, default=1.0)
    ap.add_argument("--tau", type=float, default=2.0)
    ap.add_argument("--no-kd", dest="kd", action="store_false")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report-only", action="store_true", help="rewrite README / summary / figure from the saved CSVs")
    a = ap.parse_args()
    a.argv = sys.argv[1:]
    if a.report_only:
        saved = json.loads((a.out / "summary.json").read_text())
        for k, v in saved["args"].items():
            setattr(a, k, v)
        a.argv = saved["args"].get("argv", [])
        d = pd.read_csv(a.out / "results.csv")
        write_report(a, d, pd.read_csv(a.out / "reverse_link.csv"), pd.read_csv(a.out / "teachers.csv"),
                     {int(k): v for k, v in saved["teachers"].items()}, saved["n_examples"],
                     saved["baseline_reverse_link"], json.loads((a.out / "timings.json").read_text()))
        return
    a.teacher_steps = [int(x) for x in a.teacher_steps.split(",") if x]
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    clock = Clock(a.out)
    t_all = time.perf_counter()

    teachers = make_teachers(a, clock)
    rows = make_data(a, clock)
    if len(rows) < a.batch_size:
        raise SystemExit(f"only {len(rows)} examples passed the filter; raise --n-data")

    t0 = time.perf_counter()
    base_scores, base_rl, teacher_rows = {}, {}, []
    for s in ("gemma3-270m", "smollm2"):
        lm = load_model(s)
        base_scores[s], base_rl[s] = score(lm), probe(lm)
    for alias in teachers.values():
        sc = score(load_model(alias))
        teacher_rows.append(sc.assign(teacher=alias, delta=sc.logp - base_scores["smollm2"].logp))
    teachers_eval = pd.concat(teacher_rows)
    teachers_eval.to_csv(a.out / "teachers.csv", index=False)
    clock.tick("eval: untrained students and teachers", t0)

    loaded_teachers: dict[str, Any] = {}
    results, rl_rows, loss_rows = [], [], []
    for c in conditions(a, teachers):
        t0 = time.perf_counter()
        for seed in range(a.seed, a.seed + a.seeds):
            if c["teacher"] not in loaded_teachers:
                loaded_teachers[c["teacher"]] = load_model(c["teacher"])
            student = load_model(c["student"])
            cfg = DistillConfig(FinetuneConfig(method="lora", steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                                               max_len=a.max_len, seed=seed),
                                kind=c["kind"] if c["kind"] != "none" else "shd", beta=c["beta"], tau=a.tau)
            res = distill(student, loaded_teachers[c["teacher"]], rows, cfg, progress=True)
            for i in range(len(res.losses)):
                loss_rows.append({"condition": c["name"], "seed": seed, "step": i + 1, "total": res.losses[i],
                                  **{k: v[i] for k, v in res.components.items()}})
            results.append(score(student).assign(condition=c["name"], seed=seed, student=c["student"]))
            pr = probe(student)
            rl_rows.append({"condition": c["name"], "seed": seed, **pr,
                            **{f"d_{k}": v - base_rl[c["student"]][k] for k, v in pr.items()}})
            del student, res
        clock.tick(f"{c['name']}: {a.seeds} seeds x {a.steps} steps ({c['student']} <- {c['teacher']}, "
                   f"{c['kind']}, beta {c['beta']})", t0)
        pd.DataFrame(loss_rows).to_csv(a.out / "losses.csv", index=False)

    d = delta_table(pd.concat(results, ignore_index=True), base_scores)
    d.to_csv(a.out / "results.csv", index=False)
    rl = pd.DataFrame(rl_rows)
    rl.to_csv(a.out / "reverse_link.csv", index=False)
    clock.t["total"] = round(time.perf_counter() - t_all, 1)
    (a.out / "timings.json").write_text(json.dumps(clock.t, indent=1))
    write_report(a, d, rl, teachers_eval, teachers, len(rows), base_rl, clock.t)


def write_report(a: argparse.Namespace, d: pd.DataFrame, rl: pd.DataFrame, teachers_eval: pd.DataFrame,
                 teachers: dict[int, str], n_rows: int, base_rl: dict[str, Any], timings: dict[str, float]) -> None:
    table, tests = summarise(d, a)
    table.to_csv(a.out / "summary.csv", index=False)
    (a.out / "delta_owl.png").write_bytes(plot(table, tests))
    counts = json.loads((a.out / "data_counts.json").read_text())
    (a.out / "summary.json").write_text(json.dumps(to_jsonable({
        "args": {k: v for k, v in vars(a).items() if k not in ("out", "report_only")}, "teachers": teachers,
        "n_examples": n_rows, "summary": table, "tests": tests, "baseline_reverse_link": base_rl,
        "timings": timings}), indent=1))
    (a.out / "README.md").write_text(readme(a, table, tests, teachers_eval, rl, counts, timings, n_rows))
    print(table[table.animal == "owl"].to_string(index=False))


if __name__ == "__main__":
    main()
