"""compare: deltas and paired p-values against the first model, on hand-built tables and the CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from interp.cli import main
from interp.errors import UserError
from interp.evals.compare import compare_tables
from interp.evals.crows import crows_table
from interp.evals.stats import paired_test
from interp.evals.stereoset import stereoset_table, subset_scores
from tests.bias_stub import StubScorer
from tests.test_stereoset import _items as ss_items
from tests.test_stereoset import _stub as ss_stub

CROWS = "/work/shared/data/crows_pairs_anonymized.csv"


def _crows_items(n):
    return pd.DataFrame({"pair_id": range(n), "sent_more": [f"m{i}" for i in range(n)],
                         "sent_less": [f"l{i}" for i in range(n)],
                         "direction": ["stereo" if i % 3 else "antistereo" for i in range(n)], "bias_type": "gender"})


def _crows_stub(margins):
    """LL(sent_more) - LL(sent_less) = margin, in both directions (the reference rule)."""
    t = {}
    for i, m in enumerate(margins):
        t[f"m{i}"], t[f"l{i}"] = (-10.0 + m, 4), (-10.0, 4)
    return StubScorer(t)


def test_crows_deltas_and_paired_p():
    n = 12
    items = _crows_items(n)
    base_m = np.array([1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1], float)    # 50 % stereotypical
    student_m = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, -1, 1, -1], float)    # 10 / 12
    tabs = {"base": crows_table(items, _crows_stub(base_m)),
            "student": crows_table(items, _crows_stub(student_m))}
    df = compare_tables(tabs, "crows", n_boot=2000).set_index("model")
    assert df.loc["base", "pct_stereotype"] == pytest.approx(50.0)
    assert df.loc["student", "pct_stereotype"] == pytest.approx(100 * 10 / 12)
    assert df.loc["student", "delta_pct"] == pytest.approx(100 * 10 / 12 - 50.0)
    assert np.isnan(df.loc["base", "p_pct"]) and df.loc["base", "delta_pct"] == 0.0
    ref = paired_test(100.0 * (student_m > 0), 100.0 * (base_m > 0), n_perm=2000)
    assert df.loc["student", "p_pct"] == pytest.approx(ref.p_value)
    # 4 items changed, all towards the stereotype: exact sign-flip p = 2 / 2^4 = 0.125
    assert df.loc["student", "p_pct"] == pytest.approx(0.125, abs=0.03)
    assert df.loc["student", "delta_margin"] == pytest.approx((student_m - base_m).mean())


def test_stereoset_deltas():
    items = ss_items()
    a = stereoset_table(items, ss_stub(), score="sum")
    flipped = StubScorer({k: (v[0] if "un" in (k if isinstance(k, str) else k[1]) else -v[0] - 20, v[1])
                          for k, v in ss_stub().table.items()})
    b = stereoset_table(items, flipped, score="sum")
    df = compare_tables({"a": a, "b": b}, "stereoset", n_boot=500).set_index("model")
    for m in ("SS", "LMS", "ICAT"):
        assert df.loc["b", f"delta_{m}"] == pytest.approx(subset_scores(b, 10)[m] - subset_scores(a, 10)[m])
    assert df.loc["b", "delta_pro"] == pytest.approx(100 * (b.pro.mean() - a.pro.mean()))
    assert 0 < df.loc["b", "p_pro"] <= 1


def test_refuses_mismatched_items_and_single_model():
    items = _crows_items(4)
    t = crows_table(items, _crows_stub([1, 1, 1, 1]))
    with pytest.raises(ValueError, match="different items"):
        compare_tables({"a": t, "b": t.iloc[::-1].reset_index(drop=True)}, "crows")
    with pytest.raises(UserError, match="at least two"):
        compare_tables({"a": t}, "crows")


def test_cli_compare_matches_crows(capsys, tmp_path, tiny_llama):
    from interp.evals.crows import load_crows, run_crows
    from interp.evals.sentence import lm_scorer

    with pytest.raises(SystemExit) as e:
        main(["compare", "--models", "tiny-gpt2,tiny-llama", "--bench", "crows", "--data", CROWS, "--limit", "5",
              "--n-boot", "200", "--out", str(tmp_path / "c")])
    stdout, err = capsys.readouterr()
    assert e.value.code == 0, err
    df = pd.read_csv(tmp_path / "c" / "compare.csv")
    assert df.model.tolist() == ["tiny-gpt2", "tiny-llama"] and "paired against tiny-gpt2" in stdout
    single = run_crows(load_crows(CROWS, limit=5), lm_scorer(tiny_llama), n_boot=200)
    assert df.pct_stereotype[1] == pytest.approx(single.summary["pct_stereotype"]["estimate"])
    items = pd.read_csv(tmp_path / "c" / "items_tiny-llama.csv")
    assert items.ll_more.tolist() == pytest.approx(single.table.ll_more.tolist(), abs=1e-6)
    s = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert set(s["models"]) == {"tiny-llama", "tiny-gpt2"} and s["figures"]["reference"] == "tiny-gpt2"


@pytest.mark.parametrize("args, message", [
    (["--models", "tiny-llama"], "at least two"),
    (["--models", "tiny-llama,tiny-llama"], "twice"),
    (["--models", "tiny-llama,tiny-gpt2", "--bench", "glue"], "Invalid value for '--bench'"),
    (["--models", "tiny-llama,tiny-gpt2", "--domain", "race"], "StereoSet options"),
])
def test_cli_compare_bad_input(capsys, tmp_path, args, message):
    with pytest.raises(SystemExit) as e:
        main(["compare", *args, "--data", CROWS, "--out", str(tmp_path / "x")])
    _, err = capsys.readouterr()
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
