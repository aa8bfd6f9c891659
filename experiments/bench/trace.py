"""Benchmark: `trace` over 100 numbers, batched, on the default model, with wall-clock seconds per stage;
and the residual trace batched vs one number per call.

    python experiments/bench/trace.py [--model ALIAS (default: interp's default model)] [--n 100] [--loop 10]

Stages (from `TraceResult.summary["seconds"]`): residual + head trace of all numbers, DLA (clean
and corrupt primed prompts of all numbers), patching (top 4 components and them jointly, on 20
numbers), attention patterns. Then `--loop` numbers: batched vs one call per number, and the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from interp.mech.activations import bridge
from interp.mech.trace import TraceConfig, trace
from interp.models import load_model
from interp.models.store import DEFAULT_MODEL
from interp.probes.number_sets import random_numbers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--loop", type=int, default=10)
    a = ap.parse_args()
    lm = load_model(a.model)
    t = time.perf_counter()
    bridge(lm)
    print(f"torch threads {torch.get_num_threads()}; bridge boot {time.perf_counter() - t:.1f} s", flush=True)
    nums = random_numbers(3, a.n, seed=0)
    t = time.perf_counter()
    res = trace(lm, nums, TraceConfig())
    total = time.perf_counter() - t
    print(f"{a.n} numbers, full trace: {total:.1f} s; stages {res.summary['seconds']}", flush=True)
    sub = nums[:a.loop]
    cfg = TraceConfig(dla=False, attention_heads=0)
    t = time.perf_counter()
    trace(lm, sub, cfg)
    t_b = time.perf_counter() - t
    t = time.perf_counter()
    for n in sub:
        trace(lm, [n], cfg)
    t_l = time.perf_counter() - t
    print(f"{a.loop} numbers, residual + head trace: batched {t_b:.2f} s, one at a time {t_l:.2f} s, "
          f"ratio {t_l / t_b:.2f}x", flush=True)


if __name__ == "__main__":
    main()
