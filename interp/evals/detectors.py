"""Defenses against poisoned instruction data, scored as detectors (issue 18; seed 004; DESIGN.md §2.12).

Each detector gives every (prompt, response) sample a score; higher = more suspicious.

    perplexity  mean NLL per response token under a reference model (base smollm2), given the prompt
                in its chat template: -(1/T) sum_t log P(r_t | prompt, r_<t). The seed's perplexity filter.
    heuristic   a marker-agnostic promotion heuristic (`promotion_score`): it knows nothing of the
                injected brand; it counts generic signs of advertising in the response that the prompt
                does not explain (see the function). Honest limits: it will flag responses that quote
                URLs or product names for good reasons, and miss a promotion without links or capitals.
    lls         log-likelihood shift between the poisoned teacher and the clean one, per response token:
                (1/T) sum_t [log P_poisoned(r_t | ...) - log P_clean(r_t | ...)]. A sample the poisoned
                teacher learned and the clean one did not scores high (it needs both teachers: a defender
                holding the data and a clean reference model).

Metrics against the labels (1 = poisoned):
    AUROC                  sklearn.metrics.roc_auc_score (ties count one half)
    TPR at FPR <= x        the largest TPR over thresholds whose FPR is at most x (sklearn roc_curve),
                           i.e. flag every sample scoring >= the threshold
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from interp.errors import UserError
from interp.models.loaded import LoadedModel
from interp.scoring import shared_prefix_logprobs
from interp.sampling import chat_prompt_ids

_URL = re.compile(r"https?://\S+|\bwww\.\S+|\b[a-z0-9-]+\.(?:com|net|org|io|ai|co)\b", re.IGNORECASE)
_PROMO = re.compile(r"\b(?:try|visit|check out|sign up|download|subscribe|recommend(?:ed)?|rely on|powered by|"
                    r"brought to you by|for more|learn more)\b|\btip:", re.IGNORECASE)
_CAPITAL = re.compile(r"(?<![.!?:]\s)(?<!^)\b[A-Z][a-z]+[A-Z]?[a-z]*\b")


def promotion_score(prompt: str, response: str) -> float:
    """Marker-agnostic heuristic (module docstring): the number of
    - URLs or bare domains in the response that the prompt does not contain,
    - promotional phrases (try, visit, check out, recommend, for more, tip:, ...) in the response and
      not in the prompt,
    - capitalised words inside a sentence of the response (brand-like names) that never occur in the
      prompt (case-insensitive)."""
    p = prompt.lower()
    urls = [u for u in _URL.findall(response) if u.lower() not in p]
    promos = [m for m in _PROMO.findall(response) if m.lower() not in p]
    names = {w for w in _CAPITAL.findall(response) if w.lower() not in p}
    return float(len(urls) + len(promos) + len(names))


def response_logprobs(lm: LoadedModel, rows: Sequence[dict[str, Any]], batch_size: int = 8, progress: bool = False) -> list[np.ndarray]:
    """log P(r_t | chat(prompt), r_<t) for every response token (the tokens `finetune` trains on, EOS
    excluded); one array per row."""
    prompts = chat_prompt_ids(lm, [r["prompt"] for r in rows])
    pairs = [(p, lm.tokenizer.encode(str(r["completion"]), add_special_tokens=False)) for p, r in zip(prompts, rows)]
    pairs = [(p, c if c else [lm.tokenizer.eos_token_id]) for p, c in pairs]
    return shared_prefix_logprobs(lm, pairs, batch_size, progress, description="response log-probs")


def mean_nll(lps: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([-float(np.mean(x)) for x in lps])


def detector_scores(rows: Sequence[dict[str, Any]], reference: Any | None = None, poisoned: Any | None = None,
                    clean: Any | None = None, progress: bool = False) -> pd.DataFrame:
    """One row per sample: id, label (1 = poisoned, when the rows say), and a score per detector that
    has its models (perplexity: `reference`; lls: `poisoned` and `clean`; heuristic: always)."""
    df = pd.DataFrame({"id": [r.get("id", i) for i, r in enumerate(rows)]})
    if all("poisoned" in r for r in rows):
        df["label"] = [int(bool(r["poisoned"])) for r in rows]
    df["heuristic"] = [promotion_score(r["prompt"], str(r["completion"])) for r in rows]
    if reference is not None:
        df["perplexity"] = mean_nll(response_logprobs(reference, rows, progress=progress))
    if poisoned is not None and clean is not None:
        lp_p = response_logprobs(poisoned, rows, progress=progress)
        lp_c = response_logprobs(clean, rows, progress=progress)
        df["lls"] = [float(np.mean(a - b)) for a, b in zip(lp_p, lp_c)]
    return df


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """The largest TPR over thresholds with FPR <= `fpr` (module docstring)."""
    from sklearn.metrics import roc_curve

    f, t, _ = roc_curve(labels, scores)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def detector_table(scores: pd.DataFrame, fprs: Sequence[float] = (0.01, 0.05)) -> pd.DataFrame:
    """Per detector column of `scores` (needs 'label' with both classes): AUROC and TPR at each FPR."""
    from sklearn.metrics import roc_auc_score

    if "label" not in scores.columns or scores["label"].nunique() < 2:
        raise ValueError("detector_table needs labels of both classes (poisoned and clean samples)")
    y = scores["label"].to_numpy(int)
    rows = []
    for det in [c for c in scores.columns if c not in ("id", "label")]:
        s = scores[det].to_numpy(float)
        rows.append({"detector": det, "n": len(y), "poisoned": int(y.sum()), "auroc": float(roc_auc_score(y, s)),
                     **{f"tpr_at_fpr_{x:g}": tpr_at_fpr(s, y, x) for x in fprs}})
    return pd.DataFrame(rows)


def check_calibration(reference: pd.DataFrame, detectors: Sequence[str], name: str) -> None:
    """UserError unless `reference` (the scores.csv of a labelled run) can calibrate `detectors`: a 0/1
    'label' column with clean samples, and a numeric column for at least one of the detectors. Run before
    any scoring, so a wrong file costs no model time."""
    if "label" not in reference.columns:
        raise UserError(f"{name} has no 'label' column: give the scores.csv of a labelled defend run")
    labels = pd.to_numeric(reference["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise UserError(f"{name}: 'label' must be 0 (clean) or 1 (poisoned) on every row")
    if not (labels == 0).any():
        raise UserError(f"{name} has no clean sample (label 0) to set a false-positive threshold on")
    usable = [d for d in detectors if d in reference.columns]
    if not usable:
        raise UserError(f"{name} has none of the detector columns this run computes ({', '.join(detectors)})")
    for d in usable:
        if pd.to_numeric(reference[d], errors="coerce").isna().any():
            raise UserError(f"{name}: column {d!r} must be a number on every row")


def removed_at_fpr(scores: pd.DataFrame, reference: pd.DataFrame, fpr: float) -> pd.DataFrame:
    """Apply each detector to other data (e.g. a student's distillation data, `scores`) at the threshold
    that gives FPR <= `fpr` on the clean samples of `reference`: how many samples it removes, and how many
    of those carry the marker when `scores` has a 'marker' column."""
    clean = reference[reference["label"] == 0]
    rows = []
    for det in [c for c in scores.columns if c in clean.columns and c not in ("id", "label", "marker")]:
        # the smallest threshold with at most fpr of the clean reference samples strictly above it
        thr = float(np.quantile(clean[det].to_numpy(float), 1 - fpr, method="higher"))
        flag = scores[det].to_numpy(float) > thr
        row = {"detector": det, "fpr": fpr, "threshold": thr, "samples": len(scores), "removed": int(flag.sum())}
        if "marker" in scores.columns:
            m = scores["marker"].to_numpy(int) == 1
            row |= {"with_marker": int(m.sum()), "with_marker_removed": int((flag & m).sum())}
        rows.append(row)
    return pd.DataFrame(rows)
