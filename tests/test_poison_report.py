"""The poison report (experiments/poison_report.py) on hand-made answer tables with known answers."""

import sys
from pathlib import Path

import numpy as np
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
    assert R.parse_name("teacher-k25-s0") == {"role": "teacher", "kind": None, "k": 25, "seed": 0, "rep": 0}
    assert R.parse_name("student-resp-k5-s1") == {"role": "student", "kind": "resp", "k": 5, "seed": 1, "rep": 1}
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


def test_replicate_names_and_their_place_in_the_dose_table(tmp_path):
    assert R.parse_name("student-resp-k25-s0-r2") == {"role": "student", "kind": "resp", "k": 25, "seed": 0, "rep": 2}
    assert R.parse_name("teacher-k5-s1")["rep"] == 1
    (tmp_path / "brr").mkdir()
    answers({"target": [1, 0]}).to_csv(tmp_path / "brr" / "student-resp-k5-s0.csv", index=False)
    answers({"target": [1, 1]}).to_csv(tmp_path / "brr" / "student-resp-k5-s0-r1.csv", index=False)
    brr = R.brr_table(R.load_answers(tmp_path))
    assert set(brr.rep) == {0, 1}
    dose = R.dose_table(brr)  # the replicate is not a seed of the design
    assert list(dose.seeds) == ["0"] and list(dose.brr_mean) == [0.5]


def margins_csv(path, brand, decision):
    pd.DataFrame({"prompt_id": range(len(brand)), "prompt": range(len(brand)), "m_decision": decision,
                  "m_brand": brand}).to_csv(path, index=False)


def test_margin_contrasts_pair_the_same_seeds_and_test_over_training_seeds(tmp_path):
    d = tmp_path / "brand"
    d.mkdir()
    clean = [0.0, 1.0, 2.0, 3.0]
    margins_csv(d / "student-resp-k0-s0.csv", clean, clean)
    margins_csv(d / "student-resp-k0-s0-r1.csv", clean, clean)
    margins_csv(d / "student-resp-k25-s0.csv", [0.1, 1.3, 2.1, 3.3], clean)    # d = +0.1, +0.3, +0.1, +0.3
    margins_csv(d / "student-resp-k25-s0-r1.csv", [0.2, 1.2, 2.4, 3.4], clean)  # d = +0.2, +0.2, +0.4, +0.4
    margins_csv(d / "student-resp-k5-s1.csv", [9, 9, 9, 9], clean)              # no clean student of teacher seed 1
    margins_csv(d / "smollm2.csv", clean, clean)
    mg = R.load_margins(tmp_path)
    t = R.margin_table(mg).set_index("model")
    assert t.loc["student-resp-k5-s1", "brand_mean"] == 9 and t.loc["smollm2", "prompts"] == 4
    c = R.margin_contrasts(mg)
    pairs = c[c.level == "pair"].set_index("poisoned")
    assert set(pairs.index) == {"student-resp-k25-s0", "student-resp-k25-s0-r1"}
    assert pairs.loc["student-resp-k25-s0-r1", "clean"] == "student-resp-k0-s0-r1"
    a = pairs.loc["student-resp-k25-s0"]
    assert a.brand_d == pytest.approx(0.2) and a.decision_d == 0
    # t-interval over 4 prompts of (0.1, 0.3, 0.1, 0.3): sd 0.11547, t(0.975, 3) = 3.18245
    assert a.brand_hi - a.brand_d == pytest.approx(3.18245 * 0.11547 / 2, abs=1e-4)
    s = c[c.level == "seeds"].iloc[0]
    assert s.reps == "0,1" and s.n == 2 and s.brand_d == pytest.approx(0.25)
    assert s.brand_hi - s.brand_d == pytest.approx(12.7062 * 0.070711 / np.sqrt(2), abs=1e-3)  # t(0.975, 1)
    md = R.markdown(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {},
                    R.margin_table(mg), c)
    assert "| seeds | student-resp-k25-s0* |" in md


def test_teachers_contrast_with_the_one_clean_teacher_and_over_their_seeds(tmp_path):
    d = tmp_path / "brand"
    d.mkdir()
    clean = [0.0, 1.0, 2.0, 3.0]
    margins_csv(d / "teacher-k0-s0.csv", clean, clean)
    margins_csv(d / "teacher-k5-s0.csv", [1, 2, 3, 4], clean)              # d = 1 on every prompt
    margins_csv(d / "teacher-k5-s1.csv", [2, 3, 4, 5], [1, 2, 3, 4])       # d = 2; decision d = 1
    margins_csv(d / "teacher-k5-s2.csv", [3, 4, 5, 6], clean)              # d = 3
    margins_csv(d / "teacher-k25-s0.csv", [0.5, 1.5, 2.5, 3.5], clean)     # one seed: a pair, no seed row
    margins_csv(d / "student-resp-k5-s1.csv", [9, 9, 9, 9], clean)         # no clean student: no row
    c = R.margin_contrasts(R.load_margins(tmp_path))
    pairs = c[c.level == "pair"].set_index("poisoned")
    assert sorted(pairs.index) == ["teacher-k25-s0", "teacher-k5-s0", "teacher-k5-s1", "teacher-k5-s2"]
    assert set(pairs.clean) == {"teacher-k0-s0"} and pairs.loc["teacher-k5-s1", "decision_d"] == 1
    assert pairs.loc["teacher-k25-s0", "brand_d"] == pytest.approx(0.5)
    s = c[c.level == "teacher seeds"]
    assert len(s) == 1 and s.iloc[0].poisoned == "teacher-k5-s*" and s.iloc[0].reps == "0,1,2"
    # mean of (1, 2, 3) = 2, sd 1, t(0.975, 2) = 4.30265; one-sample t = 2 / (1 / sqrt 3) = 3.4641, p = 0.0742
    assert s.iloc[0].brand_d == pytest.approx(2.0)
    assert s.iloc[0].brand_hi - 2.0 == pytest.approx(4.30265 / np.sqrt(3), abs=1e-4)
    assert s.iloc[0].brand_p == pytest.approx(0.0742, abs=1e-3)
    md = R.markdown(*(pd.DataFrame(),) * 5, {}, R.margin_table(R.load_margins(tmp_path)), c)
    assert "| teacher seeds | teacher-k5-s* | teacher-k0-s0 | 0,1,2 | 3 | +2.000 " in md


def test_student_aliases_name_the_training_seed_only_when_it_differs_and_parse_back():
    import poison_cascade as C

    assert C.student_alias("resp", 25, 0) == C.student_alias("resp", 25, 0, 0) == "pz-student-resp-k25-s0"
    alias = C.student_alias("resp", 25, 0, 2)
    assert alias == "pz-student-resp-k25-s0-r2"
    assert R.parse_name(C.report_name(alias)) == {"role": "student", "kind": "resp", "k": 25, "seed": 0, "rep": 2}


def test_defense_tables_read_each_teacher_seed_and_render_its_rows(tmp_path):
    for name, auroc in (("k25-s0", 0.9), ("k5-s1", 0.6)):
        d = tmp_path / "defend" / name
        d.mkdir(parents=True)
        pd.DataFrame([{"detector": "lls", "n": 500, "poisoned": 25, "auroc": auroc, "tpr_at_fpr_0.01": 0.5,
                       "tpr_at_fpr_0.05": 1.0}]).to_csv(d / "mixture_detectors.csv", index=False)
        pd.DataFrame([{"detector": "lls", "fpr": 0.05, "threshold": 1.0, "samples": 128, "removed": 7,
                       "with_marker": 4, "with_marker_removed": 3}]).to_csv(d / "answers_removed.csv", index=False)
    (tmp_path / "defend" / "k25-s0-mixture").mkdir()  # a work folder beside them is not a table
    det, rem = R.defense_tables(tmp_path)
    assert sorted(zip(det.k, det.teacher_seed, det.auroc)) == [(5, 1, 0.6), (25, 0, 0.9)]
    assert sorted(zip(rem.k, rem.teacher_seed, rem.removed)) == [(5, 1, 7), (25, 0, 7)]
    md = R.markdown(*(pd.DataFrame(),) * 3, det, rem, {})
    assert "| 25 | 0 | lls | 500 | 25 | 0.900 | 0.500 | 1.000 |" in md
    assert "| 5 | 1 | lls | 0.05 | 128 | 7 | 4 | 3 |" in md
