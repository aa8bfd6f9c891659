"""The dissection's patching stage, rerun: both directions (S into C, C into S) of
`interp.studies.kinds.dissection.patching` on the organism's seed-0 student pair, timed, and compared
with the committed per-question tables (reports/organism/dissection/patching_layers_<direction>.csv).

    python experiments/bench/dissection_patching.py --student ALIAS --control ALIAS [--out DIR]

The committed tables were made by the old patching (one site and one question length per forward) on
students built in an earlier session; the students here are rebuilt by the organism study from the same
recipe, so m_source / m_target differ by whatever the rebuild changed (printed), and the patched values
by that plus the fp32 order of the batched forwards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from interp.studies.kinds.dissection import patching

COMMITTED = Path(__file__).resolve().parents[2] / "reports" / "organism" / "dissection"
OLD_SECONDS = 2255.0  # reports/organism/dissection/timings.json: patching, both directions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/dissection-patching"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    params = {"traits": ["owl", "dog"], "device": "cpu", "dtype": "fp32", "tag": "layers"}
    seconds = {}
    for direction in ("S_into_C", "C_into_S"):
        t0 = time.perf_counter()
        patching(a.out, {**params, "direction": direction}, a.student, a.control)
        seconds[direction] = time.perf_counter() - t0
        new = pd.read_csv(a.out / f"patching_layers_{direction}.csv")
        old = pd.read_csv(COMMITTED / f"patching_layers_{direction}.csv")
        both = new.merge(old, on=["direction", "site", "prompt"], suffixes=("", "_old"))
        assert len(both) == len(new) == len(old), (len(both), len(new), len(old))
        diffs = {c: float(np.abs(both[c] - both[f"{c}_old"]).max()) for c in ("m_source", "m_target", "m_patched")}
        delta = (both.m_patched - both.m_target) - (both.m_patched_old - both.m_target_old)
        print(f"{direction}: {seconds[direction]:.1f} s, {len(new)} rows; max |new - committed|: "
              + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()) + f", patched delta {float(np.abs(delta).max()):.2e}")
    total = sum(seconds.values())
    print(f"both directions: {total:.1f} s (committed run: {OLD_SECONDS:.0f} s; {OLD_SECONDS / total:.1f}x)")


if __name__ == "__main__":
    main()
