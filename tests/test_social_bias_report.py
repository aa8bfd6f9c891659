"""The social-bias report's statistics (experiments/social_bias_report.py) on hand-made tables with known answers."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import social_bias_report as R  # noqa: E402

N = 20


def crows_rows(model, choices, margin=1.0):
    """per-pair rows of CrowS gender items: choice 1 -> ll_more = ll_less + margin, 0 -> ll_less + margin."""
    c = np.asarray(choices)
    return pd.DataFrame({"model": model, "bench": "crows", "item": np.arange(len(c)), "bias_type": "gender",
                         "ll_more": np.where(c == 1, -10 + margin, -10 - margin), "ll_less": -10.0,
                         "n_tokens_more": 5, "n_tokens_less": 5, "ll_unrelated": np.nan, "n_tokens_unrelated": np.nan})


def ones(k):
    return [1] * k + [0] * (N - k)


def test_per_pair_rows_read_the_eval_tables(tmp_path):
    pd.DataFrame({"pair_id": [7, 9], "bias_type": "gender", "ll_more": [-3.0, -4.0], "ll_less": [-3.5, -3.0],
                  "n_tokens_more": [4, 5], "n_tokens_less": [4, 6]}).to_csv(tmp_path / "crows_gender_pairs.csv", index=False)
    pd.DataFrame({"item_id": [1, 2], "split": ["intrasentence", "intersentence"], "bias_type": "gender",
                  "ll_stereotype": [-6.0, -8.0], "ll_anti_stereotype": [-4.0, -9.0], "ll_unrelated": [-9.0, -9.0],
                  "n_tokens_stereotype": [3, 4], "n_tokens_anti_stereotype": [1, 4], "n_tokens_unrelated": [3, 3]}
                 ).to_csv(tmp_path / "stereoset_gender_items.csv", index=False)
    pd.DataFrame({"pair_id": [0], "bias_type": "gender-occupation", "ll_more": [-9.0], "ll_less": [-8.0],
                  "n_tokens_more": [9], "n_tokens_less": [2]}).to_csv(tmp_path / "probe_occupation_pairs.csv", index=False)
    pp = R.per_pair_rows("m", tmp_path)
    assert list(pp.columns) == R.PER_PAIR_COLUMNS
    assert list(pp.bench) == ["crows", "crows", "probe-occupation", "stereoset-intra", "stereoset-inter"]
    s = R.item_scores(pp)
    # CrowS and the probe: summed LL (-3 > -3.5: 1; -4 < -3: 0; -9 < -8: 0 although -1 > -4 per token);
    # StereoSet: per-token mean (-6/3 = -2 > -4/1 = -4: 1, although -6 < -4)
    assert list(s.choice) == [1, 0, 0, 1, 1]
    assert s.margin.tolist() == pytest.approx([0.5, -1.0, -1.0, 2.0, -2.0 + 2.25])
    assert list(s.subset) == ["crows-gender", "crows-gender", "probe-occupation", "ss-gender", "ss-gender"]


def test_teacher_shift_counts_flipped_items():
    pp = pd.concat([crows_rows("smollm2", ones(10)), crows_rows("t", ones(16))])
    t = R.teacher_table(R.matrices(pp), ["t"])
    r = t.iloc[0]
    assert (r.bias_b, r.bias_a, r.delta_bias) == (50.0, 80.0, pytest.approx(30.0))  # 6 of 20 items flipped to 1
    assert r.delta_bias_lo > 0 and r.p_bias < 0.05
    assert r.delta_margin == pytest.approx(6 * 2.0 / N)  # each flipped item's margin moves from -1 to +1


def runs_for(teacher):
    return [{"alias": "s-kd", "role": "student", "arm": "kd", "student": "smollm2", "teacher": teacher, "seed": 0, "examples": 8},
            {"alias": "s-b0", "role": "student", "arm": "beta0-smollm2", "student": "smollm2", "teacher": None, "seed": 0,
             "examples": 8}]


def test_students_against_both_baselines_and_retention():
    # base 100% stereotypical, the debiased teacher 50% (drop 50 points); beta0 90%, the student 60% (drop 30)
    pp = pd.concat([crows_rows("smollm2", ones(20)), crows_rows("deb", ones(10)), crows_rows("s-b0", ones(18)),
                    crows_rows("s-kd", ones(12))])
    mats, runs = R.matrices(pp), runs_for("deb")
    st = R.student_table(mats, runs).set_index("baseline")
    assert st.loc["untouched", "reference"] == "smollm2" and st.loc["untouched", "delta_bias"] == pytest.approx(-40.0)
    assert st.loc["beta0", "reference"] == "s-b0" and st.loc["beta0", "delta_bias"] == pytest.approx(-30.0)
    ret = R.retention(mats, runs, "deb").iloc[0]
    assert ret.teacher_drop == pytest.approx(50.0) and ret.student_drop == pytest.approx(30.0)
    assert ret.retention == pytest.approx(0.6) and ret.retention_lo <= 0.6 <= ret.retention_hi and ret.defined
    c1 = R.c1_table(mats, runs).iloc[0]
    assert c1.student_minus_teacher == pytest.approx(10.0) and c1.student_shift == pytest.approx(-30.0)
    assert c1.teacher_shift == pytest.approx(-50.0)


def test_seed_level_summary_over_seeds():
    st = pd.DataFrame({"arm": "kd", "teacher": "t", "subset": "crows-gender", "baseline": "beta0", "seed": [0, 1, 2],
                       "delta_bias": [1.0, 2.0, 3.0], "delta_margin": [0.1, 0.2, 0.3]})
    s = R.seed_level(st).iloc[0]
    assert s.seeds == "0,1,2" and s.bias_mean == 2.0 and s.bias_sd == 1.0 and s.bias_p == pytest.approx(0.07418, abs=1e-4)
    assert s.margin_mean == pytest.approx(0.2) and s.margin_sd == pytest.approx(0.1)


def test_agreement_on_all_items_and_where_the_teacher_is_right():
    t = ones(10)                  # teacher: 1 on items 0..9, 0 (right) on 10..19
    s = ones(5)                   # student: agrees on 0..4 and 10..19 -> 15 of 20; on the teacher's right items 10 / 10
    b = [1] * 20                  # beta0: agrees on 0..9 -> 10 of 20; on the right items 0 / 10
    pp = pd.concat([crows_rows("smollm2", ones(20)), crows_rows("deb", t), crows_rows("s-b0", b), crows_rows("s-kd", s)])
    a = R.agreement(R.matrices(pp), runs_for("deb")).set_index("scope")
    assert (a.loc["all", "agree_student"], a.loc["all", "agree_beta0"], a.loc["all", "n"]) == (75.0, 50.0, 20)
    assert (a.loc["teacher right", "agree_student"], a.loc["teacher right", "agree_beta0"], a.loc["teacher right", "n"]) == (100.0, 0.0, 10)
    assert a.loc["teacher right", "difference"] == pytest.approx(100.0)


def test_confidence_is_mean_absolute_margin():
    pp = pd.concat([crows_rows("smollm2", ones(20)), crows_rows("deb", ones(10)), crows_rows("s-b0", ones(10), margin=1.0),
                    crows_rows("s-kd", ones(10), margin=3.0)])
    c = R.confidence(R.matrices(pp), runs_for("deb")).set_index("model")
    assert c.loc["s-kd", "mean_abs_margin"] == pytest.approx(3.0) and c.loc["s-kd", "vs_beta0"] == pytest.approx(2.0)
    assert np.isnan(c.loc["smollm2"].get("vs_beta0", np.nan))


def test_retention_of_the_margin_where_no_choice_flips():
    # every model prefers the stereotype on every item (no choice moves), but the margins do:
    # base 3 nats, debiased teacher 1 (drop 2), beta0 2.5, student 2 (drop 0.5) -> margin retention 0.25
    pp = pd.concat([crows_rows("smollm2", ones(20), 3.0), crows_rows("deb", ones(20), 1.0),
                    crows_rows("s-b0", ones(20), 2.5), crows_rows("s-kd", ones(20), 2.0)])
    r = R.retention(R.matrices(pp), runs_for("deb"), "deb").iloc[0]
    assert r.teacher_drop == 0.0 and not r.defined and np.isnan(r.retention)
    assert r.teacher_margin_drop == pytest.approx(2.0) and r.student_margin_drop == pytest.approx(0.5)
    assert r.retention_margin == pytest.approx(0.25) and r.defined_margin


def test_retention_over_seeds_is_a_t_summary():
    ret = pd.DataFrame({"arm": "kd", "subset": "crows-gender", "seed": [2, 0, 1], "retention": [0.3, 0.1, 0.2],
                        "retention_margin": [1.0, 1.0, 1.0], "defined": True, "defined_margin": [True, True, False]})
    r = R.retention_seed_level(ret).iloc[0]
    assert r.seeds == "0,1,2" and r.retention_mean == pytest.approx(0.2) and r.retention_sd == pytest.approx(0.1)
    assert r.retention_margin_mean == 1.0 and np.isnan(r.retention_margin_p)  # no spread: no t-test
    assert r.defined and not r.defined_margin  # one undefined seed makes the summary undefined


def test_teacher_contrast_pairs_students_of_one_arm_and_seed():
    runs = []
    for seed in (0, 1):
        for t in ("bias", "deb"):
            runs.append({"alias": f"kd-{t}-s{seed}", "role": "student", "arm": "kd", "student": "smollm2", "teacher": t,
                         "seed": seed, "examples": 8})
    runs.append({"alias": "kd-bias-s2", "role": "student", "arm": "kd", "student": "smollm2", "teacher": "bias",
                 "seed": 2, "examples": 8})  # no debiased partner: left out
    pp = pd.concat([crows_rows("kd-bias-s0", ones(14)), crows_rows("kd-deb-s0", ones(10)),
                    crows_rows("kd-bias-s1", ones(12)), crows_rows("kd-deb-s1", ones(10)), crows_rows("kd-bias-s2", ones(20))])
    per_seed, summary = R.teacher_contrast(R.matrices(pp), runs, "bias", "deb")
    assert per_seed.seed.tolist() == [0, 1] and per_seed.reference.tolist() == ["kd-deb-s0", "kd-deb-s1"]
    assert per_seed.delta_bias.tolist() == pytest.approx([20.0, 10.0])
    s = summary.iloc[0]
    assert (s.seeds, s.bias_mean, s.bias_n_seeds) == ("0,1", pytest.approx(15.0), 2)
    assert s.bias_sd == pytest.approx(np.std([20.0, 10.0], ddof=1))


def test_fill_readme_places_sections_and_refuses_unfilled_placeholders():
    tables = (f"## {R.TEACHER_SECTION}\n\n| t |\n|---|\n| a |\n\n## Students\n\n| s |\n\n### Per seed\n\n| x |\n\n"
              "## Perplexity\n\n| p |\n")
    out = R.fill_readme("# T\n\n{{TEACHER_TABLE}}\n\n## Students\n\n{{STUDENT_TABLES}}\n\n{{TIMINGS}}\n",
                        tables, {"b": 2.4, "a": 10.0})
    assert "| t |\n|---|\n| a |" in out
    assert "### Students\n\n| s |\n\n#### Per seed\n\n| x |" in out
    assert "### Perplexity\n\n| p |" in out
    assert out.endswith("| unit | s |\n|---|---|\n| a | 10 |\n| b | 2 |\n")
    with pytest.raises(ValueError, match="TYPO"):
        R.fill_readme("{{TEACHER_TABLE}} {{TYPO}}", tables, {})
    with pytest.raises(ValueError, match="no section"):
        R.fill_readme("{{TEACHER_TABLE}}", "## Students\n\n| s |\n", {})
