"""Bias response rate (BRR): how often a model's sampled answers carry an injected marker (issue 18;
seed 004; DESIGN.md §2.12).

    ans = sample_answers(lm, prompts, samples=4, max_new_tokens=96, seed=0)   # one row per answer
    ans["marker"] = has_marker(ans["text"], MARKER)                           # 0 / 1, one regex for every model
    brr = bias_rate_table(ans)                                                # per group: k / n, Wilson 95% CI
    amp = amplification(student_ans, teacher_ans, group="target")             # BRR_S / BRR_T with a CI

prompts: rows with 'prompt' (rendered with the model's chat template, no system prompt beyond the
model's own), 'group' and an id ('id' or 'prompt_id'). Every prompt is answered `samples` times at
temperature `temperature`; sample j of prompt i is seeded by (seed, i, j) (`sampling.sample`), so
two models answer the same prompts with the same random numbers.

    BRR(group) = (answers with the marker) / (answers)        Wilson score interval
    amplification = BRR_student / BRR_teacher, CI by the paired percentile bootstrap over prompts
                    (per-prompt marker rates resampled together, as `evals.stats.ratio_of_means_ci`
                    does, with one difference: a resample whose teacher BRR is 0 gives an infinite
                    ratio, so the upper limit may be inf, and one where both are 0 has no ratio and
                    is dropped and counted); undefined (NaN) when the teacher's BRR is 0.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from interp.errors import UserError
from interp.evals.stats import DEFAULT_BOOT, wilson_interval
from interp.models.loaded import LoadedModel
from interp.sampling import chat_prompt_ids, sample


def has_marker(texts: Sequence[str] | pd.Series, marker: str) -> np.ndarray:
    """0 / 1 per text: does the regex `marker` match anywhere in it?"""
    try:
        pat = re.compile(marker)
    except re.error as e:
        raise UserError(f"--marker is not a valid regular expression ({e})") from None
    return np.array([1 if pat.search(str(t)) else 0 for t in texts], dtype=int)


def prompt_key(row: dict[str, Any], index: int) -> Any:
    return row.get("prompt_id", row.get("id", index))


def sample_answers(lm: LoadedModel, prompts: Sequence[dict[str, Any]], samples: int = 4, max_new_tokens: int = 96,
                   temperature: float = 1.0, seed: int = 0, batch_size: int = 16, progress: bool = False) -> pd.DataFrame:
    """One row per answer: row (index into `prompts`), group, prompt_id, sample, text, finished (EOS
    within the budget)."""
    if not prompts:
        raise UserError("no prompts to answer")
    for n, r in enumerate(prompts):
        if not isinstance(r.get("prompt"), str):
            raise UserError(f"prompt row {n} needs a string field 'prompt'")
    ids = chat_prompt_ids(lm, [r["prompt"] for r in prompts], system=lm.system_prompt)
    out = sample(lm, ids, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, batch_size=batch_size,
                 progress=progress, description="answers", n_per_prompt=samples)
    return pd.DataFrame([{"row": s.prompt_index, "group": prompts[s.prompt_index].get("group", "all"),
                          "prompt_id": prompt_key(prompts[s.prompt_index], s.prompt_index), "sample": s.sample_index,
                          "text": s.text, "finished": s.finished} for s in out])


def bias_rate_table(answers: pd.DataFrame) -> pd.DataFrame:
    """Per group (and 'all'): answers n, with the marker k, BRR = k / n with its Wilson 95% CI."""
    if "marker" not in answers.columns:
        raise ValueError("answers need a 'marker' column (has_marker)")
    rows = []
    groups = list(dict.fromkeys(answers["group"]))
    for g in groups + (["all"] if len(groups) > 1 else []):
        a = answers if g == "all" else answers[answers["group"] == g]
        k, n = int(a["marker"].sum()), int(len(a))
        w = wilson_interval(k, n)
        rows.append({"group": g, "prompts": int(a["prompt_id"].nunique()), "answers": n, "with_marker": k,
                     "brr": w.estimate, "lo": w.lo, "hi": w.hi})
    return pd.DataFrame(rows)


def amplification(student: pd.DataFrame, teacher: pd.DataFrame, group: str | None = None,
                  n_boot: int = DEFAULT_BOOT, seed: int = 0) -> dict[str, float]:
    """BRR_student / BRR_teacher on the prompts both answered (of `group`), paired bootstrap CI over
    prompts; NaNs when the teacher never shows the marker. When the student never shows it, every
    resample is 0 and the bootstrap says nothing, so the CI is [0, wilson_hi(0, n) / BRR_teacher]: the
    student's Wilson upper bound over its n answers divided by the teacher's BRR (`ci` says which)."""
    def per_prompt(a: pd.DataFrame) -> pd.Series:
        a = a if group is None else a[a["group"] == group]
        return a.groupby("prompt_id")["marker"].mean()

    s, t = per_prompt(student), per_prompt(teacher)
    common = s.index.intersection(t.index)
    if len(common) == 0:
        raise ValueError("the student and the teacher answered no common prompt")
    a = student if group is None else student[student["group"] == group]
    n_student = int(a["prompt_id"].isin(common).sum())
    s, t = s.loc[common].to_numpy(float), t.loc[common].to_numpy(float)
    out = {"prompts": int(len(common)), "brr_student": float(s.mean()), "brr_teacher": float(t.mean())}
    if t.mean() == 0:
        return out | {"amplification": float("nan"), "lo": float("nan"), "hi": float("nan"), "resamples_dropped": 0,
                      "ci": "none"}
    if s.sum() == 0:
        return out | {"amplification": 0.0, "lo": 0.0, "hi": float(wilson_interval(0, n_student).hi / t.mean()),
                      "resamples_dropped": 0, "ci": "wilson bound"}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(s), size=(n_boot, len(s)))
    num, den = s[idx].mean(1), t[idx].mean(1)
    both_zero = (num == 0) & (den == 0)  # 0 / 0: no ratio; dropped and counted
    with np.errstate(divide="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)[~both_zero]
    lo, hi = np.quantile(ratio, [0.025, 0.975], method="inverted_cdf")  # no interpolation: inf stays inf
    return out | {"amplification": float(s.mean() / t.mean()), "lo": float(lo), "hi": float(hi),
                  "resamples_dropped": int(both_zero.sum()), "ci": "bootstrap"}
