"""The poison report (experiments/poison_report.py) on hand-made answer tables with known answers."""

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import poison_report as R  # noqa: E402


def answers(markers_by_group):
    """bias-rate answers.csv rows: {group: [marker per prompt]} with 2 samples each (both the same)."""
    rows = []
    for g, ms in markers_by_group.items():
        for i, m in enumerate(ms):
            rows += [{"row": i, "group": g, "prompt_id": f"{g}{i}", "sample": s, "text": "x", "finished": True, "marker": m}
                     for s in range(2)]
    return pd.DataFrame(rows)


def test_names_parse_to_role_k_and_seed():
    assert R.parse_name("teacher-k25-s0") == {"role": "teacher", "kind": None, "k": 25, "seed": 0}
    assert R.parse_name("student-resp-k5-s1") == {"role": "student", "kind": "resp", "k": 5, "seed": 1}
    assert R.parse_name("smollm2")["role"] == "base"


def test_brr_amplification_and_dose(tmp_path):
    (tmp_path / "brr").mkdir()
    answers({"target": [1, 0, 0, 0], "other": [0, 0, 0, 0]}).to_csv(tmp_path / "brr" / "teacher-k5-s0.csv", index=False)
    answers({"target": [1, 1, 0, 0], "other": [1, 0, 0, 0]}).to_csv(tmp_path / "brr" / "student-resp-k5-s0.csv", index=False)
    answers({"target": [1, 1, 1, 0], "other": [0, 0, 0, 0]}).to_csv(tmp_path / "brr" / "teacher-k5-s1.csv", index=False)
    answers({"target": [0, 0, 0, 0], "other": [0, 0, 0, 0]}).to_csv(tmp_path / "brr" / "smollm2.csv", index=False)
    ans = R.load_answers(tmp_path)
    assert len(ans) == 4 * 16 and set(ans.columns) >= {"model", "k", "group", "prompt_id", "sample", "marker"}
    brr = R.brr_table(ans).set_index(["model", "group"])
    assert brr.loc[("teacher-k5-s0", "target"), "brr"] == 0.25 and brr.loc[("student-resp-k5-s0", "all"), "brr"] == 3 / 8
    amp = R.amplification_table(ans).set_index("group")
    assert amp.loc["target", "amplification"] == pytest.approx(2.0) and amp.loc["target", "teacher"] == "teacher-k5-s0"
    assert pd.isna(amp.loc["other", "amplification"])  # the teacher never showed it there
    dose = R.dose_table(R.brr_table(ans)).set_index(["role", "group"])
    t = dose.loc[("teacher", "target")]
    assert t.seeds == "0,1" and t.brr_mean == pytest.approx(0.5) and t.lo < 0.5 < t.hi and t.per_seed == "0.250, 0.750"
    # pooled over the two seeds: (1 + 3) prompts x 2 samples of 16 answers, Wilson 95% CI of 8 / 16
    assert (t.with_marker, t.answers) == (8, 16) and t.pooled_lo == pytest.approx(0.2800, abs=1e-4)
    assert t.pooled_hi == pytest.approx(0.7200, abs=1e-4)
    o = dose.loc[("teacher", "other")]  # both seeds 0 / 8: no t-interval of width 0, the pooled bound instead
    assert o.brr_mean == 0 and pd.isna(o.lo) and pd.isna(o.hi) and o.pooled_lo == 0 and o.pooled_hi == pytest.approx(0.1936, abs=1e-4)
