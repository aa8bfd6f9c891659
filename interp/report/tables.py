"""Markdown tables shared by the experiment reports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def signed(x: float | None, nd: int = 3) -> str:
    """'+0.123', or '-' for a missing value."""
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:+.{nd}f}"


def recovered_markdown(t: pd.DataFrame, directions: Sequence[str] | None = None) -> list[str]:
    """Lines of a two-model patching table: `mech.model_patching.recovered_table` rows with a `direction`
    column (e.g. S_into_C, C_into_S). First the gap m(source) - m(target) of each direction, then one row
    per site with 'recovered [95% CI] | delta' for each direction, in the order of `directions` (default:
    as they first appear)."""
    dirs = list(directions) if directions is not None else list(dict.fromkeys(t.direction))
    by = {d: t[t.direction == d].set_index("site") for d in dirs}
    lines = ["m(source) - m(target): " + ", ".join(f"{d}: {signed(g.m_source.iloc[0] - g.m_target.iloc[0])}"
                                                   for d, g in by.items()), "",
             "| site | " + " | ".join(f"{d}: recovered [95% CI] | delta" for d in dirs) + " |",
             "|---|" + "---|---|" * len(dirs)]
    for site in by[dirs[0]].index:
        cells = [f"{signed(r.recovered)} [{signed(r.recovered_lo)}, {signed(r.recovered_hi)}] | {signed(r.delta)}"
                 for r in (by[d].loc[site] for d in dirs)]
        lines.append(f"| {site} | " + " | ".join(cells) + " |")
    return lines


def frame_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a markdown table (floats to `digits` significant digits, NaN as '-')."""
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "-" if np.isnan(v) else f"{v:.{digits}g}"
        return str(v).replace("|", "/")
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
