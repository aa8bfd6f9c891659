"""experiments/families/c8_verdict.py: C8's pre-registered rule (control gate, Holm over the tested arms with the
missing ones at p = 1, MDE against the control's effect, the 1.5x perplexity "damaged" flag)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "families" / "c8_verdict.py"
c8 = load_script("experiments/families/c8_verdict.py")

DESIGN = c8.Design(tested={"shd-a": "sft-a", "shd-b": "sft-a", "kd-shared-a": "sft-a"}, shd=("shd-a", "shd-b"),
                   control="kd-within", n_seeds=3)


def families(rows: dict[str, tuple[int, float, float, float, float]]) -> pd.DataFrame:
    """arm -> (n_seeds, interaction, p, mde_80, ppl), plus the beta = 0 student sft-a at perplexity 30."""
    out = [{"family": "f", "arm": "sft-a", "beta": 0.0, "n_seeds": 3, "interaction": float("nan"), "lo": float("nan"),
            "hi": float("nan"), "p": float("nan"), "mde_80": float("nan"), "ppl": 30.0}]
    for arm, (n, i, p, mde, ppl) in rows.items():
        out.append({"family": "f", "arm": arm, "beta": 1.0, "n_seeds": n, "interaction": i, "lo": i - 0.1, "hi": i + 0.1,
                    "p": p, "mde_80": mde, "ppl": ppl})
    return pd.DataFrame(out)


def test_a_survivor_is_counted_against_the_whole_family_of_tests():
    t = c8.verdict_table(families({"kd-within": (3, 1.6, 0.001, 0.3, 27.0), "shd-a": (3, 0.5, 0.01, 0.2, 31.0)}), DESIGN)
    a = t.set_index("arm")
    assert a.p_holm["shd-a"] == pytest.approx(0.03)  # 3 tests, the two missing at p = 1
    assert a.survives["shd-a"] and not a.damaged["shd-a"] and a.ppl_ratio["shd-a"] == pytest.approx(31 / 30)
    assert c8.verdict(t).startswith("supported: shd-a")


def test_a_negative_or_unfinished_arm_does_not_survive():
    t = c8.verdict_table(families({"kd-within": (3, 1.6, 0.001, 0.3, 27.0), "shd-a": (3, -0.5, 1e-4, 0.2, 31.0),
                                   "shd-b": (2, 0.9, 1e-4, 0.2, 31.0)}), DESIGN)
    assert not t.survives.any()
    assert c8.verdict(t).startswith("pending (1 of 2 SHD arms")


def test_contradicted_needs_every_shd_mde_below_the_control_effect():
    rows = {"kd-within": (3, 1.6, 0.001, 0.3, 27.0), "shd-a": (3, 0.05, 0.6, 0.4, 31.0), "shd-b": (3, 0.1, 0.5, 0.5, 70.0),
            "kd-shared-a": (3, 0.0, 0.9, 0.3, 30.0)}
    t = c8.verdict_table(families(rows), DESIGN)
    assert c8.verdict(t).startswith("contradicted")
    assert t.set_index("arm").damaged["shd-b"]  # 70 > 1.5 x 30
    rows["shd-b"] = (3, 0.1, 0.5, 2.0, 31.0)  # this null could not have seen I = 1.6
    assert c8.verdict(c8.verdict_table(families(rows), DESIGN)).startswith("inconclusive: no SHD arm")


def test_no_verdict_without_the_positive_control():
    rows = {"kd-within": (3, 0.2, 0.3, 0.9, 27.0), "shd-a": (3, 0.5, 0.001, 0.2, 31.0)}
    assert c8.verdict(c8.verdict_table(families(rows), DESIGN)).startswith("inconclusive (the within-family control")


def test_the_design_comes_from_the_c8_spec_and_the_script_writes_its_table(tmp_path):
    d = c8.design_of(REPO / "studies" / "families" / "c8.yaml")
    assert d.control == "kd-unbiased-data-lora" and d.n_seeds == 3 and len(d.tested) == 8
    assert set(d.shd) == {f"shd-{f}-b{b}" for f in ("gemma3", "qwen") for b in ("0.1", "1", "10")}
    assert d.tested["kd-shared-qwen"] == "sft-qwen"
    (tmp_path / "r").mkdir()
    families({"kd-unbiased-data-lora": (3, 1.6, 0.001, 0.3, 27.0)}).to_csv(tmp_path / "r" / "families.csv", index=False)
    done = subprocess.run([sys.executable, str(SCRIPT), str(REPO / "studies" / "families" / "c8.yaml"), "--report",
                           str(tmp_path / "r"), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(tmp_path / "out" / "c8_verdict.csv")) == 9
    assert "C8: pending (6 of 6 SHD arms not done" in done.stdout
