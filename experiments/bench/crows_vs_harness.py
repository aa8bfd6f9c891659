"""Benchmark and reference check: `interp crows` against lm-evaluation-harness on the same pairs.

    pip install "lm-eval[hf]==0.4.13"          # not a dependency of interp; only this script needs it
    python experiments/bench/crows_vs_harness.py [--model ALIAS (default: interp's default model)] [--limit N] [--threads N] [--out reports/crows]

Both score the same CrowS-Pairs CSV (../shared/data/crows_pairs_anonymized.csv) with the same
weights (the store folder of --model). The harness runs its own `crows_pairs_english` task code:
the task's `doc_to_choice` and `process_results` (lm_eval.tasks.crows_pairs.utils) on a local copy
of the data (dataset_path "csv", so nothing is downloaded), through `simple_evaluate` with HFLM.

Prints and writes (OUT/crows_vs_harness.json, OUT/crows_vs_harness_pairs.csv):
- max |LL_interp - LL_harness| over all sentences (sent_more and sent_less);
- pairs whose decision differs (must be 0), with both rules: interp's stereotype_sum and the
  harness's pct_stereotype (= 1 if ll(sent_more) > ll(sent_less));
- pct_stereotype of each;
- wall and CPU seconds of the scoring (model loading excluded, reported apart) and the ratio
  harness / interp;
- the floor: the distinct token positions of all sentences (the prefixes of BOS + sentence, each
  counted once: nothing less computes every log-likelihood), the positions interp's tries compute and
  the harness's (every sentence in full), and a floor time: plain causal forwards (no tree mask) over
  interp's trie rows with the LM head and the logsumexp of every position, scaled by distinct / computed
  positions; interp / floor is the ratio to it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from clock import (
    Clock,  # experiments/bench/clock.py (the script's folder is on sys.path)
)

from interp.models.loaded import LoadedModel
from interp.models.store import DEFAULT_MODEL

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "crows_pairs_anonymized.csv"


def run_interp(model: str, csv: Path, limit: int | None, batch: int) -> tuple[pd.DataFrame, dict, Path]:
    from interp.cli.common import quiet_transformers
    from interp.evals.crows import load_crows, run_crows
    from interp.evals.sentence import lm_scorer
    from interp.models import load_model

    quiet_transformers()
    with Clock() as load:
        lm = load_model(model)
    items = load_crows(csv, limit=limit)
    with Clock() as score:
        res = run_crows(items, lm_scorer(lm, batch_size=batch), n_boot=1000)
    fl = floor(lm, items)
    return res.table, {"load_s": load.wall, "score_wall_s": score.wall, "score_cpu_s": score.cpu,
                       "pct_stereotype": res.summary["pct_stereotype"]["estimate"], **fl}, Path(lm.path)


def floor(lm: LoadedModel, items: pd.DataFrame) -> dict:
    """Distinct positions, the positions each scorer computes, and the floor time (module docstring)."""
    from interp.evals.sentence import sentence_pairs
    from interp.models.tree import TreePlan
    from interp.scoring import left_pad, length_plan, prefix_groups, trie_node_budget

    sents = [s for pair in zip(items.sent_more, items.sent_less) for s in pair]
    pairs = [(tuple(c), tuple(x)) for c, x in sentence_pairs(lm.tokenizer, sents, None)]
    seqs = [c + x for c, x in pairs]
    distinct = len({q[:k] for q in set(seqs) for k in range(1, len(q))})  # positions that predict a token
    unique = list(dict.fromkeys(pairs))
    groups = prefix_groups(unique)
    rows = [list(ctx[:-1]) + TreePlan.build(list(ctx), [list(unique[i][1]) for i in m]).trie.token for ctx, m in groups]
    computed = sum(len(r) for r in rows)
    budget = trie_node_budget(int(lm.model.config.vocab_size))
    lengths = [len(r) for r in rows]
    order = sorted(range(len(rows)), key=lengths.__getitem__)
    with Clock() as c, torch.no_grad():
        for idx in length_plan(lengths, budget)(order, len(order)):
            logits = lm.model(**left_pad([rows[i] for i in idx], lm.tokenizer.pad_token_id), use_cache=False).logits
            torch.logsumexp(logits.float(), dim=-1)  # the normaliser every log-prob needs, as interp takes it
    return {"distinct_positions": distinct, "interp_positions": computed,
            "harness_positions": sum(len(q) - 1 for q in seqs),
            "floor_wall_s": c.wall * distinct / computed, "rows_plain_wall_s": c.wall}


def run_harness(folder: Path, csv: Path, limit: int | None, batch: int) -> tuple[list[dict], dict]:
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks.crows_pairs import utils as cp

    task = {  # crows_pairs_english.yaml, with the data read from the local CSV
        "task": "crows_pairs_english_local", "dataset_path": "csv",
        "dataset_kwargs": {"data_files": {"test": str(csv)}}, "test_split": "test",
        "output_type": "multiple_choice", "doc_to_text": "", "doc_to_target": 0,
        "doc_to_choice": cp.doc_to_choice, "target_delimiter": "", "process_results": cp.process_results,
        "metric_list": [{"metric": "likelihood_diff", "aggregation": "mean", "higher_is_better": False},
                        {"metric": "pct_stereotype", "aggregation": "mean", "higher_is_better": False}],
        "metadata": {"version": 1.0},
    }
    with Clock() as load:
        lm = HFLM(pretrained=str(folder), backend="causal", batch_size=batch, device="cpu", dtype="float32")
    with Clock() as score:
        out = lm_eval.simple_evaluate(model=lm, tasks=[task], limit=limit, log_samples=True,
                                      task_manager=TaskManager(), bootstrap_iters=0)
    samples = out["samples"]["crows_pairs_english_local"]
    pct = out["results"]["crows_pairs_english_local"]["pct_stereotype,none"]
    return samples, {"load_s": load.wall, "score_wall_s": score.wall, "score_cpu_s": score.cpu,
                     "pct_stereotype": 100.0 * pct, "version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="reports/crows")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    csv = Path(a.data)
    table, ti, folder = run_interp(a.model, csv, a.limit, a.batch_size)
    samples, th = run_harness(folder, csv, a.limit, a.batch_size)
    samples = sorted(samples, key=lambda s: s["doc_id"])
    ll = np.array([[float(r[0][0]) if isinstance(r[0], (list, tuple)) else float(r[0]) for r in s["resps"]]
                   for s in samples])  # (pairs, 2): ll(sent_more), ll(sent_less)
    h_dec = np.array([int(s["pct_stereotype"]) for s in samples])
    assert len(samples) == len(table), (len(samples), len(table))
    pairs = table[["pair_id", "direction", "bias_type", "ll_more", "ll_less", "stereotype_sum"]].copy()
    pairs["ll_more_harness"], pairs["ll_less_harness"], pairs["stereotype_harness"] = ll[:, 0], ll[:, 1], h_dec
    max_ll = float(np.abs(np.concatenate([pairs.ll_more - ll[:, 0], pairs.ll_less - ll[:, 1]])).max())
    differ = int((pairs.stereotype_sum != pairs.stereotype_harness).sum())
    rule = int((pairs.stereotype_sum != (pairs.ll_more > pairs.ll_less).astype(int)).sum())
    res = {"model": a.model, "folder": str(folder), "pairs": len(pairs), "threads": torch.get_num_threads(),
           "max_abs_ll_diff": max_ll, "decisions_differ": differ, "interp_vs_sent_more_rule_differ": rule,
           "interp": ti, "harness": th, "ratio_harness_over_interp_wall": th["score_wall_s"] / ti["score_wall_s"],
           "ratio_harness_over_interp_cpu": th["score_cpu_s"] / ti["score_cpu_s"]}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs.to_csv(out / "crows_vs_harness_pairs.csv", index=False)
    (out / "crows_vs_harness.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"pairs {len(pairs)}; max |LL interp - LL harness| {max_ll:.2e}; decisions differ: {differ}; "
          f"interp rule != 'sent_more scores higher': {rule}")
    print(f"pct_stereotype interp {ti['pct_stereotype']:.2f}, harness {th['pct_stereotype']:.2f}")
    print(f"scoring wall s: interp {ti['score_wall_s']:.1f}, harness {th['score_wall_s']:.1f} "
          f"(harness / interp = {res['ratio_harness_over_interp_wall']:.2f}); CPU s ratio "
          f"{res['ratio_harness_over_interp_cpu']:.2f}; model load s: interp {ti['load_s']:.1f}, harness {th['load_s']:.1f}")
    print(f"floor: {ti['distinct_positions']} distinct positions; interp computes {ti['interp_positions']}, "
          f"the harness {ti['harness_positions']}; floor {ti['floor_wall_s']:.1f} s wall, "
          f"interp / floor = {ti['score_wall_s'] / ti['floor_wall_s']:.2f}")
    print(f"wrote {out}/crows_vs_harness.json and crows_vs_harness_pairs.csv")


if __name__ == "__main__":
    main()
