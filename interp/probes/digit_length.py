"""Digit-length sweep (study Phase 3, DESIGN.md §2.3).

For each length L: the animal -> number probe with the autoregressive method over all 10^L numbers
(trie scorer), neutral vs biased prompt; its top-k increased numbers go into the reverse link
(number -> animal) with the template control (random numbers of the same length). Per length:

    mean bias_ratio               = mean_n P(bias | primed(n)) / P(bias | baseline)
    mean bias_ratio / template    = mean_n bias_ratio(n) / mean_{m random, |m| = L} bias_ratio(m)
    mean specificity              = mean_n log bias_ratio(n) - log control_ratio(n)

each with a bootstrap 95% CI over the k numbers. `plot_sweep` draws both ratios against L.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from interp.errors import UserError
from interp.evals.stats import bootstrap_ci
from interp.models.loaded import LoadedModel
from interp.plots import figure_png
from interp.probes.number_sets import check_digits
from interp.probes.numbers import NumbersConfig, animal_numbers
from interp.probes.reverse_link import ReverseLinkConfig, reverse_link


@dataclass
class SweepResult:
    table: pd.DataFrame  # one row per length: means with CIs, top numbers
    numbers: pd.DataFrame  # one reverse-link row per (length, increased number)
    summary: dict[str, Any]


def parse_digit_range(text: str) -> list[int]:
    """'1-4' -> [1, 2, 3, 4]; '2' -> [2]; '1,3' -> [1, 3]."""
    out: list[int] = []
    try:
        for part in text.replace(" ", "").split(","):
            if "-" in part:
                a, b = part.split("-", 1)
                out += list(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise UserError(f"--digits must look like 1-4 or 1,3, got {text!r}") from None
    if not out:
        raise UserError(f"--digits must name at least one length, got {text!r}")
    for L in out:
        check_digits(L)
    return sorted(set(out))


def digit_length_sweep(lm: LoadedModel, bias: str = "owl", control: str = "dog", lengths: list[int] | None = None,
                       top: int = 15, numbers_config: NumbersConfig = NumbersConfig(),
                       link_config: ReverseLinkConfig = ReverseLinkConfig(), progress: bool = False) -> SweepResult:
    """Run the sweep (module docstring) over `lengths` (default 1..4)."""
    lengths = lengths or [1, 2, 3, 4]
    rows, per_number, details = [], [], {}
    for L in lengths:
        ncfg = replace(numbers_config, bias=bias, method="ar", digits=L, top=top)
        nres = animal_numbers(lm, bias, ncfg, progress=progress)
        inc = nres.category("increased")
        if not inc:
            raise UserError(f"no {L}-digit number became more probable under the bias")
        rl = reverse_link(lm, inc, bias=bias, control=control, config=link_config, progress=progress)
        t = rl.table.merge(nres.table[["number", "diff", "log_ratio"]], on="number")
        t.insert(0, "length", L)
        per_number.append(t)
        ci = {m: bootstrap_ci(t[m], n_boot=link_config.n_boot, seed=link_config.seed)
              for m in ("bias_ratio", "bias_ratio_vs_template", "specificity") if m in t}
        row: dict[str, Any] = {"length": L, "n": len(t)}
        for m, iv in ci.items():
            row[m], row[m + "_lo"], row[m + "_hi"] = iv.estimate, iv.lo, iv.hi
        tmpl = rl.summary.get("template_control", {}).get(str(L))
        if tmpl:
            row["template_bias_ratio"] = tmpl["bias_ratio_mean"].estimate
        row["top_numbers"] = " ".join(inc[:5])
        rows.append(row)
        details[str(L)] = {"numbers_probe": nres.summary, "reverse_link": rl.summary, "means": ci}
    table = pd.DataFrame(rows)
    return SweepResult(table, pd.concat(per_number, ignore_index=True), {"lengths": lengths, "per_length": details})


def plot_sweep(table: pd.DataFrame, bias: str) -> bytes:
    """PNG: mean bias_ratio with its 95% CI vs length, raw and against the template control."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    series = [("bias_ratio", "raw bias ratio"), ("bias_ratio_vs_template", "bias ratio / template control")]
    for k, (col, label) in enumerate(series):
        if col not in table:
            continue
        x = table.length + (k - 0.5) * 0.08
        err = [table[col] - table[col + "_lo"], table[col + "_hi"] - table[col]]
        ax.errorbar(x, table[col], yerr=err, marker="o", capsize=4, label=label)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(list(table.length))
    ax.set_xlabel("digits in the number")
    ax.set_ylabel(f"mean P({bias} | primed) / P({bias} | baseline)")
    ax.set_title("reverse link of the top increased numbers, by length (95% CI)")
    ax.legend()
    return figure_png(fig)
