"""Compare models on the same bias-benchmark items, against the first model (the reference).

    tables = {"base": run_crows(items, lm_scorer(base)).table, "student": ...}
    df = compare_tables(tables, "crows")      # one row per model

Paired tests (`interp.evals.stats.paired_test`: sign-flip permutation test on per-item
differences, bootstrap CI of their mean) compare each model with the reference on the SAME items:

crows:      delta_pct = 100 * mean_i(choice_model,i - choice_ref,i) = pct_model - pct_ref, with CI and
            p (choice = 1 if sent_more, the more stereotyping sentence, is likelier: summed log-likelihood);
            delta_margin = mean_i(margin_model,i - margin_ref,i), margin = LL(sent_more) - LL(sent_less), p.
stereoset:  SS, LMS, ICAT per model (per-target macro, `stereoset.subset_scores`) and their
            differences from the reference; paired tests on the per-item indicators
            pro (stereotype preferred; its mean is the item-level, micro SS), related (0..2), and
            on the per-item margin s(stereotype) - s(anti-stereotype).
The reference row has deltas 0 and p-values NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from interp.choices import Bench, choices
from interp.errors import UserError
from interp.evals.crows import pct_ci
from interp.evals.stats import DEFAULT_BOOT, paired_test
from interp.evals.stereoset import subset_scores

BENCHES = choices(Bench)
ITEM_KEY = {"crows": "pair_id", "stereoset": "item_id"}


def _paired(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, prefix: str, scale: float = 1.0) -> dict[str, float]:
    """delta (mean of a - b, times scale) with CI and the paired p-value, as prefixed columns."""
    r = paired_test(scale * a, scale * b, n_perm=n_boot, seed=seed)
    d = r.mean_diff
    return {f"delta_{prefix}": d.estimate, f"delta_{prefix}_lo": d.lo, f"delta_{prefix}_hi": d.hi, f"p_{prefix}": r.p_value}


def compare_tables(tables: dict[str, pd.DataFrame], bench: str, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per model (in the given order): the benchmark's headline scores with CIs, and the
    deltas and paired p-values against the first model (formulas in the module docstring)."""
    if bench not in BENCHES:
        raise UserError(f"--bench must be one of {', '.join(BENCHES)}")
    if len(tables) < 2:
        raise UserError("compare needs at least two models")
    names = list(tables)
    ref = tables[names[0]]
    key = ITEM_KEY[bench]
    for name in names[1:]:
        if not np.array_equal(tables[name][key].to_numpy(), ref[key].to_numpy()):
            raise ValueError(f"model {name!r} was scored on different items than {names[0]!r}")
    rows: list[dict[str, Any]] = []
    for name in names:
        t = tables[name]
        row: dict[str, Any] = {"model": name, "n": int(len(t))}
        if bench == "crows":
            c = pct_ci(t["stereotype_sum"].to_numpy(), n_boot, seed)
            row.update({"pct_stereotype": c["estimate"], "lo": c["lo"], "hi": c["hi"],
                        "mean_margin": float(t["margin_sum"].mean())})
            pairs = [("pct", "stereotype_sum", 100.0), ("margin", "margin_sum", 1.0)]
        else:
            row.update(subset_scores(t, n_boot, seed))
            row["pct_pro_items"] = float(100.0 * t["pro"].mean())
            pairs = [("pro", "pro", 100.0), ("related", "related", 1.0), ("margin", "margin", 1.0)]
            for m in ("SS", "LMS", "ICAT"):
                row[f"delta_{m}"] = row[m] - (rows[0][m] if rows else row[m])
        for prefix, col, scale in pairs:
            if name == names[0]:
                row.update({f"delta_{prefix}": 0.0, f"delta_{prefix}_lo": 0.0, f"delta_{prefix}_hi": 0.0,
                            f"p_{prefix}": float("nan")})
            else:
                row.update(_paired(t[col].to_numpy(np.float64), ref[col].to_numpy(np.float64), n_boot, seed, prefix, scale))
        rows.append(row)
    return pd.DataFrame(rows)
