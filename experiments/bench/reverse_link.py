"""Benchmark: batched reverse-link probe vs a one-prompt-at-a-time loop over the same numbers.

    python experiments/bench/reverse_link.py [--model ALIAS (default: interp's default model)] [--n 100] [--batch-size 16]

Prints both wall times and their ratio, and checks both give the same bias ratios (1e-4 relative).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from interp.cli.common import quiet_transformers
from interp.models import load_model
from interp.models.store import DEFAULT_MODEL
from interp.probes.number_sets import random_numbers
from interp.probes.reverse_link import (
    ReverseLinkConfig,
    primed_prompt,
    resolve_targets,
    reverse_link,
)
from interp.scoring import encode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    quiet_transformers()
    torch.set_grad_enabled(False)
    lm = load_model(args.model)
    nums = random_numbers(3, args.n, seed=0)
    cfg = ReverseLinkConfig(template_control=0, cumulative=False, batch_size=args.batch_size)

    t0 = time.perf_counter()
    batched = reverse_link(lm, nums, config=cfg).table.bias_ratio.to_numpy()
    t_batched = time.perf_counter() - t0

    owl = resolve_targets(lm, cfg)[0].token_ids[0][0]
    t0 = time.perf_counter()
    base_ids = encode(lm.tokenizer, [primed_prompt(lm, None, cfg)])[0]
    base = torch.log_softmax(lm.model(torch.tensor([base_ids])).logits[0, -1], -1)[owl]
    loop = []
    for n in nums:
        ids = encode(lm.tokenizer, [primed_prompt(lm, [n], cfg)])[0]
        lp = torch.log_softmax(lm.model(torch.tensor([ids])).logits[0, -1], -1)[owl]
        loop.append(float((lp - base).exp()))
    t_loop = time.perf_counter() - t0

    max_rel = float(np.max(np.abs(batched - np.array(loop)) / np.array(loop)))
    print(f"model {args.model}, {args.n} numbers, batch size {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"batched probe      : {t_batched:7.2f} s")
    print(f"one-at-a-time loop : {t_loop:7.2f} s")
    print(f"speed-up (loop / batched): {t_loop / t_batched:.2f}x")
    print(f"max relative difference of bias_ratio: {max_rel:.2e}")
    if max_rel > 1e-4:
        raise SystemExit("batched and looped bias ratios disagree")


if __name__ == "__main__":
    main()
