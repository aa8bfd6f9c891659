"""What SHD has to carry: the SHD loss between pairs of models on the same numbers, as the trainer computes it.

SHD trains the student's attention maps towards the teacher's (squeezed) maps on the training texts. The owl and
dog students of a crossover can only differ if the owl and dog teachers' maps differ on those texts, so

    signal   = L_SHD(owl teacher -> dog teacher)            what tells the two teachers apart in SHD's space
    residual = L_SHD(teacher -> trained SHD student)        what the student still misses after training
    crossed  = L_SHD(other teacher -> same student) - residual
                                                            > 0 if the student fits its own teacher's maps
                                                            better than the other's (the crossover, in SHD's space)

each the mean over batches of `distill.make_objective`'s "shd" term (KL(teacher map || student map), mean over
student layers; kind shd, tau 1: the C8 recipe's), under no_grad, on the first N rows of a numbers file rendered
as the student's fine-tuning batches. A pair is TEACHER:STUDENT (store aliases or `study:ROLE` names are not
resolved here: give aliases, e.g. from `interp models`).

    python experiments/families/shd_signal.py --data reports/organism/data/unbiased.jsonl --n 64 \
        --pair TEACHER_OWL:TEACHER_DOG --pair TEACHER_OWL:STUDENT_OWL --pair TEACHER_DOG:STUDENT_OWL ... \
        --out reports/families/shd_signal.csv

Writes one row per pair and batch and prints the mean per pair. Columns: teacher, student (aliases); for each of the
two models, from its store entry (`recipe`): *_base, *_trait (its own, or its teacher's for a distilled student),
*_method (distillation kind, else fine-tuning method), *_beta, *_seed (training seed), *_n_train (its training
examples); then batch, examples (rows measured here), tau,
max_len, batch_size, data, shd. A model with no store entry (an embedded or tiny model) is its own base with the
rest empty.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from interp.models.loaded import LoadedModel
from interp.models.loading import load_model
from interp.models.sharing import eager_attention
from interp.models.store import read_meta
from interp.training.config import FinetuneConfig
from interp.training.distill import DistillConfig, check_pair, make_objective
from interp.training.examples import collate, tokenize_examples


def recipe(alias: str, meta: dict | None, teacher_meta: dict | None) -> dict:
    """What a store entry was made from: base, trait (own, else its teacher's), method, beta, seed and n_train (its
    training examples); None where unknown."""
    meta = meta or {}
    training = meta.get("training") or {}
    config, distill = training.get("config") or {}, training.get("distill") or {}
    return {"base": meta.get("base") or alias, "trait": meta.get("trait") or (teacher_meta or {}).get("trait"),
            "method": distill.get("kind") or config.get("method"), "beta": distill.get("beta"),
            "seed": config.get("seed"), "n_train": meta.get("n_examples") or training.get("n_examples")}


def recipe_of(alias: str) -> dict:
    """`recipe` of a store alias, reading its entry and its teacher's."""
    meta = read_meta(alias)
    teacher = (meta or {}).get("teacher")
    return recipe(alias, meta, read_meta(teacher) if teacher else None)


def shd_per_batch(t: LoadedModel, s: LoadedModel, rows: list[dict], tau: float, max_len: int,
                  batch_size: int) -> list[float]:
    """The "shd" term of the trainer's objective for each batch of `rows` (in order), teacher `t` -> student `s`."""
    config = DistillConfig(FinetuneConfig(method="full", steps=1, batch_size=batch_size, max_len=max_len),
                           kind="shd", beta=1.0, tau=tau)
    check_pair(s, t, config)
    data = tokenize_examples(s, rows, max_len, "all")
    objective = make_objective(s, t, config, data, rows)
    out = []
    with torch.no_grad(), eager_attention(s.model, t.model):
        for start in range(0, len(data.ids), batch_size):
            idx = list(range(start, min(start + batch_size, len(data.ids))))
            batch = {**collate(data, idx, s.tokenizer.pad_token_id), "example_index": torch.tensor(idx)}
            out.append(objective(s.model, batch)[1]["shd"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="numbers jsonl (prompt, completion)")
    ap.add_argument("--n", type=int, default=64, help="first N rows")
    ap.add_argument("--pair", action="append", required=True, help="TEACHER:STUDENT (store aliases)")
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    rows = [json.loads(line) for line in a.data.read_text().splitlines() if line.strip()][: a.n]
    if len(rows) < a.n:
        raise SystemExit(f"{a.data} has {len(rows)} rows, fewer than --n {a.n}")
    pairs = [p.partition(":") for p in a.pair]
    for (teacher, sep, student), pair in zip(pairs, a.pair):
        if not sep or not teacher or not student:
            raise SystemExit(f"--pair {pair!r}: expected TEACHER:STUDENT")
    records = []
    a.out.parent.mkdir(parents=True, exist_ok=True)
    loaded: dict[tuple[str, str], LoadedModel] = {}  # (role, alias): the trainer wants two objects for a self-pair
    for i, (teacher, _, student) in enumerate(pairs):
        needed = {k for t, _, s in pairs[i:] for k in (("teacher", t), ("student", s))}
        for key in set(loaded) - needed:  # memory: drop a model no later pair names before loading the next
            del loaded[key]
        for key in (("teacher", teacher), ("student", student)):
            if key not in loaded:
                loaded[key] = load_model(key[1])
        labels = {"teacher": teacher, "student": student,
                  **{f"teacher_{k}": v for k, v in recipe_of(teacher).items()},
                  **{f"student_{k}": v for k, v in recipe_of(student).items()}}
        t, s = loaded["teacher", teacher], loaded["student", student]
        for b, v in enumerate(shd_per_batch(t, s, rows, a.tau, a.max_len, a.batch_size)):
            records.append({**labels, "batch": b, "examples": a.n, "tau": a.tau, "max_len": a.max_len,
                            "batch_size": a.batch_size, "data": str(a.data), "shd": v})
        table = pd.DataFrame(records)
        table.to_csv(a.out, index=False, float_format="%.6g")  # after every pair: a stopped run keeps what it measured
        print(f"{teacher} -> {student}: {table[(table.teacher == teacher) & (table.student == student)].shd.mean():.5f}",
              flush=True)


if __name__ == "__main__":
    main()
