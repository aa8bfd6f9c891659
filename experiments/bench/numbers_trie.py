"""Benchmark: the digit-trie scorer vs one full forward per prefix, and the compute floor.

    python experiments/bench/numbers_trie.py [--model ALIAS (default: interp's default model)] [--threads N]

On one prompt ("What is your favorite number?" / "My favorite number is "), prints:
- the trie scorer's wall time for L = 3 and L = 4 (all 10^L numbers);
- the naive loop for L = 3 (one full forward of context + prefix per trie node: 1 + 10 + 100
  forwards), its per-forward time and the extrapolation to L = 4 (1 + 10 + 100 + 1000 forwards);
- the floor: one batched forward of the same number of new tokens (1,111 for L = 4) through the
  model body on top of the prompt's cache (plain causal attention, no LM head), and the same with
  the LM head and logsumexp;
- the ratios naive / trie at L = 4 and trie / floor, and max |trie - naive| over all L = 3 numbers;
- the whole command, `interp numbers --method ar --digits 4` (both prompts: neutral and biased), run
  `--repeats` times as a subprocess, with start-up measured apart as the same command at --digits 1
  (imports, model load, both prompts, tables: everything but the 4-digit tries); its work
  (median digits-4 wall - median digits-1 wall) against the floor of both prompts (body + LM head +
  logsumexp of each prompt's trie nodes on its cache): command / floor.

Every time is given as wall seconds and as this process's CPU seconds (time.process_time); on a
shared, oversubscribed machine the wall times carry the other jobs' load, so the ratios use CPU time
(with --threads 1, CPU time is the compute the scorer needs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import numpy as np
import torch
from clock import (
    Clock,  # experiments/bench/clock.py (the script's folder is on sys.path)
)
from transformers import DynamicCache

from interp.cli.common import quiet_transformers
from interp.models import load_model
from interp.models.compat import cache_kwargs
from interp.models.store import DEFAULT_MODEL
from interp.probes.numbers import NumbersConfig, number_prompt
from interp.prompts import NUMBER_PREFIX, NUMBER_QUESTION, render
from interp.scoring import build_trie, digit_trie_logprobs, split_continuations


def naive_prefix_loop(lm, ctx: list[int], conts: list[list[int]]) -> tuple[np.ndarray, int, Clock]:
    """log P of every continuation from one plain full forward per trie node (prefix): (n,), forwards, clock."""
    trie = build_trie(ctx[-1], conts)
    # the token sequence each node ends with: context + the prefix it stands for
    prefix = [[] for _ in range(trie.n_nodes)]
    for i in range(1, trie.n_nodes):
        prefix[i] = prefix[trie.parent[i]] + [trie.token[i]]
    node_lp = []
    with Clock() as clock:
        for i in range(trie.n_nodes):
            logits = lm.model(torch.tensor([ctx + prefix[i]])).logits[0, -1]
            node_lp.append(torch.log_softmax(logits.double(), -1))
    out = np.array([sum(float(node_lp[n][t]) for n, t in path) for path in trie.leaf_path])
    return out, trie.n_nodes, clock


def floor(lm, ctx: list[int], n_new: int, with_head: bool) -> Clock:
    """Time of one forward of n_new tokens on top of the cache of ctx[:-1] (causal attention)."""
    cache = DynamicCache()
    lm.model(torch.tensor([ctx[:-1]]), **cache_kwargs(lm.model, cache), use_cache=True, logits_to_keep=1)
    ids = torch.tensor([ctx[-1:] + [ctx[-1]] * (n_new - 1)])
    pos = torch.arange(len(ctx) - 1, len(ctx) - 1 + n_new)[None]
    with Clock() as clock:
        if with_head:
            logits = lm.model(ids, position_ids=pos, **cache_kwargs(lm.model, cache), use_cache=True).logits
            torch.logsumexp(logits.float(), -1)  # the normaliser, as the trie takes it (logit - logsumexp)
        else:
            lm.model.get_decoder()(input_ids=ids, position_ids=pos, **cache_kwargs(lm.model.get_decoder(), cache), use_cache=True)
    return clock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); on a shared, "
                    "oversubscribed machine 1 avoids OpenMP spin-wait collapse")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the whole command per digit count")
    ap.add_argument("--command-only", action="store_true", help="skip the naive loop (the whole command and its floor only)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_transformers()
    torch.set_grad_enabled(False)
    lm = load_model(args.model)
    prompt = render(lm.tokenizer, NUMBER_QUESTION, NUMBER_PREFIX, system=lm.system_prompt)
    print(f"model {args.model}, threads {torch.get_num_threads()}")

    digit_trie_logprobs(lm, prompt, 1)  # warm-up
    times: dict[int, Clock] = {}
    lps = {}
    for L in (3, 4):
        with Clock() as times[L]:
            _, lps[L] = digit_trie_logprobs(lm, prompt, L)
        print(f"trie L={L}: {times[L]} for {10**L} numbers")

    if args.command_only:
        whole_command(lm, args)
        return
    nums3 = [str(i).zfill(3) for i in range(1000)]
    ctx, conts = split_continuations(lm.tokenizer, prompt, nums3)
    naive3, n_fw, naive = naive_prefix_loop(lm, ctx, conts)
    conts4 = split_continuations(lm.tokenizer, prompt, [str(i).zfill(4) for i in range(10**4)])[1]
    n_nodes4 = build_trie(ctx[-1], conts4).n_nodes
    per_fw: Callable[[str], float] = lambda k: getattr(naive, k) / n_fw  # noqa: E731
    print(f"naive L=3: {naive} ({n_fw} forwards, {per_fw('cpu') * 1000:.1f} ms CPU each); "
          f"max |trie - naive| over 1000 numbers: {np.abs(naive3 - lps[3]).max():.2e}")
    print(f"naive L=4 (extrapolated, {n_nodes4} forwards): {per_fw('cpu') * n_nodes4:.1f} s CPU "
          f"({per_fw('wall') * n_nodes4:.1f} s wall)")
    f_body = floor(lm, ctx, n_nodes4, with_head=False)
    f_head = floor(lm, ctx, n_nodes4, with_head=True)
    print(f"floor, one forward of {n_nodes4} new tokens on the prompt cache: body {f_body}; "
          f"body + LM head + logsumexp {f_head}")
    for k in ("cpu", "wall"):
        t3, t4 = getattr(times[3], k), getattr(times[4], k)
        print(f"ratios ({k}): naive/trie L=3 {getattr(naive, k) / t3:.1f}x, naive/trie L=4 "
              f"{per_fw(k) * n_nodes4 / t4:.1f}x, trie/floor(body) L=4 {t4 / getattr(f_body, k):.2f}x, "
              f"trie/floor(body+head) L=4 {t4 / getattr(f_head, k):.2f}x")
    whole_command(lm, args)


def command_wall(model: str, digits: int, threads: int) -> float:
    """Wall seconds of one `interp numbers --method ar --digits D` run in a fresh process."""
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "interp", "numbers", "--model", model, "--method", "ar", "--digits",
                        str(digits), "--bias", "owl", "--out", out, "--force"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t


def whole_command(lm, args) -> None:
    """The whole command's work at 4 digits against the floor of both prompts (module docstring)."""
    floors = []
    for bias in (None, "owl"):
        ctx, conts = split_continuations(lm.tokenizer, number_prompt(lm, bias, NumbersConfig()),
                                         [str(i).zfill(4) for i in range(10**4)])
        n_nodes = build_trie(ctx[-1], conts).n_nodes
        floor(lm, ctx, n_nodes, with_head=True)  # warm-up
        floors.append(statistics.median(floor(lm, ctx, n_nodes, with_head=True).wall for _ in range(args.repeats)))
    walls = {d: [command_wall(args.model, d, args.threads) for _ in range(args.repeats)] for d in (1, 4)}
    w1, w4 = statistics.median(walls[1]), statistics.median(walls[4])
    print(f"whole command (wall, median of {args.repeats}): --digits 4 {w4:.2f} s, --digits 1 (start-up) {w1:.2f} s, "
          f"work {w4 - w1:.2f} s; floor of both prompts {floors[0]:.2f} + {floors[1]:.2f} s; "
          f"command / floor = {(w4 - w1) / sum(floors):.2f}")

if __name__ == "__main__":
    main()
