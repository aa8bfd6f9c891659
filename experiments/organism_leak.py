"""How much of the KD target is the animal words themselves? (a check on reports/organism/)

KD matches the teacher's whole next-token distribution, so a teacher that puts visible mass on
" owl" at a number position teaches it directly, not subliminally. For each teacher and the base
model, on the first 64 examples of the unbiased pool (the KD data of arm kd-unbiased-data), at every
completion position: P(any token of owl) and of dog, mean over positions. The tokens are
`prompts.word_token_ids` (every single token that spells the word or its plural, any case, with or
without a leading space): the set `distill --kd-drop-words` removes in the control arm.
Writes reports/organism/leak.csv.

    python experiments/organism_leak.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from interp.models import load_model
from interp.prompts import word_token_ids
from interp.training.distill import KdTeacherInputs
from interp.training.examples import IGNORE, collate, tokenize_examples

OUT = Path(__file__).resolve().parent.parent / "reports" / "organism"
MODELS = ["smollm2", "smollm2-owl", "smollm2-dog", "smollm2-owl-lora", "smollm2-dog-lora"]


def main() -> None:
    rows = [json.loads(x) for x in (OUT / "data" / "unbiased.jsonl").read_text().splitlines()[:64]]
    student = load_model("smollm2")
    data = tokenize_examples(student, rows, 128)
    ids = {w: word_token_ids(student.tokenizer, [w]) for w in ("owl", "dog")}
    out = []
    for name in MODELS:
        lm = load_model(name)
        t_in = KdTeacherInputs(lm, rows, data)
        p_owl, p_dog, n = 0.0, 0.0, 0
        for start in range(0, len(rows), 16):
            idx = list(range(start, min(len(rows), start + 16)))
            labels = collate(data, idx, student.tokenizer.pad_token_id)["labels"]
            p = torch.softmax(t_in.logits(idx, labels).float(), -1)  # (positions, vocab)
            p_owl += float(p[:, ids["owl"]].sum())
            p_dog += float(p[:, ids["dog"]].sum())
            n += int((labels[:, 1:] != IGNORE).sum())
        out.append({"model": name, "positions": n, "mean_p_owl_tokens": p_owl / n, "mean_p_dog_tokens": p_dog / n})
        print(out[-1], flush=True)
    pd.DataFrame(out).to_csv(OUT / "leak.csv", index=False, float_format="%.4g")
    print("token ids:", ids)


if __name__ == "__main__":
    main()
