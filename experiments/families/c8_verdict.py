"""C8's verdict by the rule fixed before the results (reports/families/README.md, "The verdict rules").

Reads the C8 spec (which arms are tested: every arm with a `reference`, i.e. a cross-family student with
its family's beta = 0 baseline; which is the within-family control: the arm with a teacher trained in the
base family) and its report's families.csv (interaction, t-CI, seed-level p, MDE, perplexity per arm), and

- the control gate: the control's interaction I_c > 0 with seed-level p < 0.05 over all its seeds;
- Holm over the seed-level p of all tested arms (`evals.stats.holm_adjusted`, n_tests = every tested arm in
  the spec: an arm not done yet counts as p = 1, so a survivor now survives the full family); an arm
  survives when I > 0 and its Holm p < 0.05;
- the damaged flag: the arm's students' mean perplexity > 1.5 x its reference (beta = 0) students';
- the verdict over the SHD arms (options kind shd): supported if one survives; contradicted if all are done,
  none survives and every one's MDE is below I_c; pending while arms are missing; else inconclusive.

Writes <out>/c8_verdict.csv (one row per tested arm and the control) and prints it as markdown with the
verdict line:

    python experiments/families/c8_verdict.py studies/families/c8.yaml [--out reports/families]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from interp.evals.stats import holm_adjusted

ALPHA = 0.05
DAMAGE_RATIO = 1.5


@dataclass(frozen=True)
class Design:
    """What the spec fixes: the tested arms (arm -> its reference arm), which of them are SHD, the control arm,
    the number of training seeds every arm must have."""

    tested: dict[str, str]
    shd: tuple[str, ...]
    control: str
    n_seeds: int


def design_of(spec: Path) -> Design:
    from interp.studies.spec import load_study

    recipe = load_study(spec).recipe
    tested = {name: arm.reference for name, arm in recipe.arms.items() if arm.reference}
    controls = [name for name, arm in recipe.arms.items()
                if arm.teacher and not arm.reference and arm.student in (None, "base")]
    if len(controls) != 1 or not tested:
        raise SystemExit(f"{spec}: expected one within-family arm with a teacher and arms with a reference; "
                         f"got controls {controls}, tested {sorted(tested)}")
    seeds = {len(d.seeds) for d in recipe.doses}
    if len(recipe.doses) != 1 or len(seeds) != 1:
        raise SystemExit(f"{spec}: C8's verdict reads one dose; the spec has {len(recipe.doses)}")
    shd = tuple(n for n in tested if recipe.arms[n].options.get("kind") == "shd")
    return Design(tested, shd, controls[0], seeds.pop())


def verdict_table(families: pd.DataFrame, design: Design) -> pd.DataFrame:
    """One row per tested arm and the control: n_seeds, interaction [lo, hi], p, MDE, done (all seeds),
    p_holm (tested arms), survives, perplexity, the reference's perplexity, their ratio, damaged."""
    by_arm = families.drop_duplicates("arm").set_index("arm")
    rows = []
    for arm in [design.control, *design.tested]:
        r = by_arm.loc[arm] if arm in by_arm.index else None
        ref = design.tested.get(arm)
        ref_ppl = by_arm.ppl.get(ref, np.nan) if ref else np.nan
        n = int(r.n_seeds) if r is not None else 0
        rows.append({"arm": arm, "kind": "control" if arm == design.control else "shd" if arm in design.shd else "other",
                     "family": r.family if r is not None else "", "beta": r.beta if r is not None else np.nan,
                     "n_seeds": n, "done": n >= design.n_seeds,
                     **{k: (r[k] if r is not None else np.nan) for k in ("interaction", "lo", "hi", "p", "mde_80", "ppl")},
                     "reference": ref or "", "ppl_reference": ref_ppl})
    t = pd.DataFrame(rows)
    t["ppl_ratio"] = t.ppl / t.ppl_reference
    t["damaged"] = t.ppl_ratio > DAMAGE_RATIO
    tested = (t.kind != "control") & t.done & t.p.notna()
    t["p_holm"] = np.nan
    if tested.any():
        t.loc[tested, "p_holm"] = holm_adjusted(t.p[tested].to_numpy(), n_tests=len(design.tested))
    t["survives"] = tested & (t.p_holm < ALPHA) & (t.interaction > 0)
    return t


def verdict(t: pd.DataFrame) -> str:
    control = t[t.kind == "control"].iloc[0]
    if not control.done:
        return "pending (the within-family control is not done)"
    if not (control.interaction > 0 and control.p < ALPHA):
        return f"inconclusive (the within-family control shows no transfer: I {control.interaction:+.3f}, p {control.p:.3g})"
    shd = t[t.kind == "shd"]
    won = shd[shd.survives]
    if len(won):
        return "supported: " + ", ".join(f"{a} (I {i:+.3f}, Holm p {p:.3g})" for a, i, p in zip(won.arm, won.interaction, won.p_holm))
    if not shd.done.all():
        return f"pending ({int((~shd.done).sum())} of {len(shd)} SHD arms not done; none survives Holm so far)"
    if (shd.mde_80 < control.interaction).all():
        return (f"contradicted: no SHD arm survives Holm, and every one's MDE ({shd.mde_80.min():.2f}-{shd.mde_80.max():.2f})"
                f" is below the control's I {control.interaction:+.3f}")
    return "inconclusive: no SHD arm survives Holm, and not every one could have seen the control's effect (MDE)"


def markdown(t: pd.DataFrame) -> str:
    lines = ["| arm | family | beta | seeds | interaction [95% t-CI] | seed-level p | Holm p | MDE 80% | perplexity "
             "(x its beta = 0 student's) | survives | damaged |", "|" + "---|" * 11]
    for r in t.to_dict("records"):
        ci = "-" if pd.isna(r["interaction"]) else (
            f"{r['interaction']:+.3f}" + ("" if pd.isna(r["lo"]) else f" [{r['lo']:+.3f}, {r['hi']:+.3f}]"))
        ppl = "-" if pd.isna(r["ppl"]) else f"{r['ppl']:.2f}" + ("" if pd.isna(r["ppl_ratio"]) else f" ({r['ppl_ratio']:.2f}x)")
        cells = [r["arm"], r["family"] or "-", "-" if pd.isna(r["beta"]) else f"{r['beta']:g}", str(r["n_seeds"]), ci,
                 "-" if pd.isna(r["p"]) else f"{r['p']:.3g}", "-" if pd.isna(r["p_holm"]) else f"{r['p_holm']:.3g}",
                 "-" if pd.isna(r["mde_80"]) else f"{r['mde_80']:.2f}", ppl,
                 "control" if r["kind"] == "control" else ("yes" if r["survives"] else "no" if r["done"] else "pending"),
                 "yes" if r["damaged"] else "no" if not pd.isna(r["ppl_ratio"]) else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("spec", type=Path, help="the C8 study spec (studies/families/c8.yaml)")
    ap.add_argument("--report", type=Path, help="its report folder (default: the spec's `report:`)")
    ap.add_argument("--out", type=Path, default=Path("reports/families"))
    a = ap.parse_args()
    design = design_of(a.spec)
    if a.report is None:
        from interp.studies.spec import load_study

        a.report = load_study(a.spec).report_dir
    if a.report is None or not (a.report / "families.csv").exists():
        raise SystemExit(f"no families.csv in {a.report} (run the study, or `interp study interim`)")
    t = verdict_table(pd.read_csv(a.report / "families.csv"), design)
    a.out.mkdir(parents=True, exist_ok=True)
    t.to_csv(a.out / "c8_verdict.csv", index=False, float_format="%.5g")
    if (a.report / "interim.json").exists():
        print(f"{a.report}: an interim report (interim.json): the arms not done count as p = 1 in Holm\n")
    print(markdown(t), end="\n\n")
    print("C8:", verdict(t))


if __name__ == "__main__":
    main()
