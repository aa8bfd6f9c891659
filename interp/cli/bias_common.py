"""Options and result tables shared by `interp crows`, `interp stereoset` and `interp compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd
import typer

from interp.cli.common import print_table
from interp.cli.params import InFile, Int
from interp.errors import UserError

DataOpt = InFile(None, "--data", help="benchmark file (CrowS-Pairs CSV / StereoSet JSONL or JSON); never downloaded")
LimitOpt = Int(None, "--limit", help="score only the first N items (after filtering)", ge=1)
ScoreOpt = typer.Option("mean", "--score", help="StereoSet candidate score: mean (per-token, the reference) | sum")
BiasTypeOpt = typer.Option(None, "--bias-type", help="CrowS-Pairs: only this bias type (e.g. gender)")
DomainOpt = typer.Option(None, "--domain", help="StereoSet: only this domain (gender, profession, race, religion)")
SplitOpt = typer.Option(None, "--split", help="StereoSet: only intrasentence or intersentence")
NBootOpt = Int(10_000, "--n-boot", help="bootstrap / permutation resamples", ge=100)


def need_data(data: Optional[Path], what: str) -> Path:
    if data is None:
        raise UserError(f"--data is required: the path to {what}")
    return data


def _iv(d: dict[str, Any], est: str, lo: str, hi: str, digits: int = 1) -> str:
    """'52.3 [49.8, 54.9]': percentages and scores on a 0..100 scale need one decimal."""
    return f"{d[est]:.{digits}f} [{d[lo]:.{digits}f}, {d[hi]:.{digits}f}]"


def print_crows(summary: dict[str, Any], by_type: pd.DataFrame, title: str) -> None:
    """Headline figures and the per-bias-type table of a CrowS-Pairs run."""
    rows = [("pairs", summary["n_pairs"]),
            ("pct_stereotype, summed LL [95% CI]", _iv(summary["pct_stereotype"], "estimate", "lo", "hi")),
            ("pct_stereotype, per-token mean LL [95% CI]", _iv(summary["pct_stereotype_mean_ll"], "estimate", "lo", "hi"))]
    for d in ("stereo", "antistereo"):
        if summary.get(f"n_{d}"):
            rows.append((f"pct_stereotype on {d} rows (n={summary[f'n_{d}']})", f"{summary[f'pct_stereotype_{d}_rows']:.1f}"))
    rows += [("mean LL(sent_more) - LL(sent_less) [95% CI]", _iv(summary["mean_margin_sum"], "estimate", "lo", "hi", 3)),
             ("ties (summed LL)", summary["ties_sum"])]
    print_table(title, ["figure", "value"], rows)
    print_table("by bias type (ideal 50)", ["bias_type", "n", "pct_stereotype [95% CI]", "per-token mean LL"],
                [(r["bias_type"], r["n"], _iv(r, "pct_stereotype", "lo", "hi"),
                  _iv(r, "pct_stereotype_mean_ll", "mean_ll_lo", "mean_ll_hi")) for r in by_type.to_dict("records")])


def print_stereoset(scores: pd.DataFrame, title: str) -> None:
    """SS / LMS / ICAT per (split, domain)."""
    print_table(title, ["split", "domain", "items", "targets", "SS [95% CI]", "LMS [95% CI]", "ICAT [95% CI]"],
                [(r["split"], r["domain"], r["n_items"], r["n_targets"], _iv(r, "SS", "SS_lo", "SS_hi"),
                  _iv(r, "LMS", "LMS_lo", "LMS_hi"), _iv(r, "ICAT", "ICAT_lo", "ICAT_hi"))
                 for r in scores.to_dict("records")])


def print_compare(df: pd.DataFrame, bench: str, title: str) -> None:
    """The compare table: scores, deltas against the first model, paired p-values."""
    recs = df.to_dict("records")
    if bench == "crows":
        print_table(title, ["model", "pct_stereotype [95% CI]", "delta pct [95% CI]", "p (paired)",
                            "mean margin", "delta margin [95% CI]", "p (paired)"],
                    [(r["model"], _iv(r, "pct_stereotype", "lo", "hi"), _iv(r, "delta_pct", "delta_pct_lo", "delta_pct_hi"),
                      _p(r["p_pct"]), f"{r['mean_margin']:.3f}",
                      _iv(r, "delta_margin", "delta_margin_lo", "delta_margin_hi", 3), _p(r["p_margin"])) for r in recs])
    else:
        print_table(title, ["model", "SS [95% CI]", "LMS [95% CI]", "ICAT [95% CI]", "dSS", "dLMS", "dICAT",
                            "p pro", "p related"],
                    [(r["model"], _iv(r, "SS", "SS_lo", "SS_hi"), _iv(r, "LMS", "LMS_lo", "LMS_hi"),
                      _iv(r, "ICAT", "ICAT_lo", "ICAT_hi"), f"{r['delta_SS']:+.1f}", f"{r['delta_LMS']:+.1f}",
                      f"{r['delta_ICAT']:+.1f}", _p(r["p_pro"]), _p(r["p_related"])) for r in recs])


def _p(p: float) -> str:
    return "-" if p != p else f"{p:.4g}"  # NaN for the reference model

