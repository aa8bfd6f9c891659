"""Benchmark: seconds per training step of SHD distillation vs a plain LM step plus a teacher forward.

    python experiments/bench/shd_step.py [--teacher ALIAS] [--student ALIAS] (defaults: the default model, the other family's) [--batch-size 8] [--steps 5]

One torch thread. Batch: `--batch-size` number-sequence prompts (`generate_prompts`) with made-up
numeric completions, rendered for the student as in training (`finetune.tokenize_examples`).
Each phase runs in its own subprocess, so its peak memory is its own: ru_maxrss (peak resident set
size of the process, from resource.getrusage) after loading the models and after the timed steps.

- lm:      plain LM step of the student: forward (sdpa), completion loss, backward, AdamW step.
- teacher: no-grad teacher forward on the teacher's tokenisation of the same texts (eager, maps returned).
- shd:     the SHD step of `interp distill`: teacher forward with maps + squeeze, student forward
           (eager, maps) with LM + SHD loss, backward, AdamW step.

Prints median s/step of each over `--steps` timed steps (after one warm-up step), the ratio
shd / (lm + teacher) (goal <= 1.5) and the peak memory of each phase.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from interp.models.store import DEFAULT_MODEL, DEFAULT_OTHER_FAMILY

PHASES = ("lm", "teacher", "shd")


def rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    import numpy as np

    from interp.training.numbers_data import generate_prompts

    rng = np.random.default_rng(seed)
    return [{"prompt": p, "completion": ", ".join(str(x) for x in rng.integers(0, 1000, size=10))}
            for p in generate_prompts(n, seed=seed)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_phase(a: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    from interp.models import load_model
    from interp.training import config as tc
    from interp.training import distill as D
    from interp.training import examples as ex
    from interp.training import finetune as ft
    from interp.training.shd_loss import eager_attention

    data_rows = rows(a.batch_size)
    cfg = D.DistillConfig(tc.FinetuneConfig(method=a.method, steps=a.steps + 1, batch_size=a.batch_size,
                                            max_len=a.max_len), kind="shd", beta=a.beta, tau=a.tau)
    student = load_model(a.student)
    teacher = load_model(a.teacher) if a.phase in ("teacher", "shd") else None
    data = ex.tokenize_examples(student, data_rows, a.max_len)
    idx = list(range(a.batch_size))
    batch = {**ex.collate(data, idx, student.tokenizer.pad_token_id), "example_index": torch.tensor(idx)}
    info = {"rss_loaded_mb": rss_mb(), "student_tokens": int(batch["attention_mask"].sum()),
            "width": int(batch["input_ids"].shape[1])}
    times = []
    if a.phase == "teacher":
        assert teacher is not None
        pairs = D.ShdBatches(student, teacher, data)
        _, t_enc = pairs.encodings(idx, batch["input_ids"], batch["attention_mask"])
        info["teacher_tokens"] = int(t_enc["attention_mask"].sum())
        with torch.no_grad(), eager_attention(teacher.model):
            for _ in range(a.steps + 1):
                t0 = time.perf_counter()
                teacher.model(input_ids=t_enc["input_ids"], attention_mask=t_enc["attention_mask"],
                              position_ids=t_enc["position_ids"], output_attentions=True, use_cache=False)
                times.append(time.perf_counter() - t0)
    else:
        model = ft.prepare_model(student, cfg.finetune)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.finetune.learning_rate())
        if a.phase == "lm":
            objective, ctx = ft.lm_batch_loss, eager_attention()
        else:
            assert teacher is not None
            objective, ctx = D.make_objective(student, teacher, cfg, data), eager_attention(student.model, teacher.model)
        model.train()
        with ctx:
            for _ in range(a.steps + 1):
                t0 = time.perf_counter()
                loss, _ = objective(model, batch)  # the step of `finetune.train_loop` in one process
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.finetune.grad_clip)
                opt.step()
                times.append(time.perf_counter() - t0)
    info.update({"s_per_step": statistics.median(times[1:]), "times": times, "rss_peak_mb": rss_mb()})
    return info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default=DEFAULT_MODEL)
    ap.add_argument("--student", default=DEFAULT_OTHER_FAMILY)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--method", default="lora")
    ap.add_argument("--beta", type=float, default=10.0)
    ap.add_argument("--tau", type=float, default=2.0)
    ap.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # internal: run one phase
    a = ap.parse_args()
    if a.phase:
        print(json.dumps(run_phase(a)))
        return
    res = {}
    for ph in PHASES:
        cmd = [sys.executable, __file__, "--phase", ph] + [x for k, v in vars(a).items() if k != "phase"
                                                           for x in (f"--{k.replace('_', '-')}", str(v))]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        if out.returncode:
            sys.exit(f"phase {ph} failed:\n{out.stderr[-3000:]}")
        res[ph] = json.loads(out.stdout.strip().splitlines()[-1])
        r = res[ph]
        print(f"{ph:8s} {r['s_per_step']:.3f} s/step (median of {a.steps}; all {[round(t, 2) for t in r['times']]}); "
              f"peak RSS {r['rss_peak_mb']:.0f} MB (after loading {r['rss_loaded_mb']:.0f} MB)", flush=True)
    base = res["lm"]["s_per_step"] + res["teacher"]["s_per_step"]
    print(f"batch {a.batch_size} x {res['lm']['width']} student tokens ({res['lm']['student_tokens']} real), "
          f"{res['teacher']['teacher_tokens']} teacher tokens; {a.teacher} -> {a.student} ({a.method}); torch threads 1")
    print(f"ratio shd / (lm + teacher) = {res['shd']['s_per_step']:.3f} / {base:.3f} = "
          f"{res['shd']['s_per_step'] / base:.2f}  (goal <= 1.5)")


if __name__ == "__main__":
    main()
