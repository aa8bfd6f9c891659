"""Claims 3 and 4 of issue 36 read off organism tables (interp/studies/kinds/steering_report.py): each
verdict branch on hand-made arms / per-seed tables, the teachers' crossover from roles, the learning-rate
pick on the training objective."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp.studies.kinds.steering_report import (
    claim3_verdict,
    claim4_table,
    claim4_verdict,
    learning_rate_picks,
    teacher_crossovers,
)

BUILDS = {f"{ch}-{b}": {"build": b, "optimizer": "adamw", "lr": 5e-5}
          for ch in ("kd", "sft") for b in ("prompt", "steered", "projected", "random")}


def arm(name: str, mean: float, half: float = 0.3) -> dict:
    return {"arm": name, "channel": "c" if name.startswith("kd") else "a", "mean": mean, "lo": mean - half,
            "hi": mean + half, "p": 0.01, "mde_80": 0.5}


@pytest.mark.parametrize("prompt, steered, projected, verdict", [
    (3.0, 2.0, 0.1, "supported"),
    (3.0, 0.5, 0.1, "contradicted"),     # the vector alone carries under half of what the prompt does
    (3.0, 2.0, 2.5, "contradicted"),     # projecting the vector out leaves most of the transfer
    (3.0, 2.0, 1.4, "inconclusive"),     # projected: under half, but its CI reaches over it
])
def test_claim3_verdict_branches(prompt, steered, projected, verdict):
    arms = pd.DataFrame([arm("kd-prompt", prompt), arm("kd-steered", steered), arm("kd-projected", projected),
                         arm("kd-random", 0.0), arm("sft-prompt", 0.1), arm("sft-steered", 0.1), arm("sft-projected", 0.0)])
    v = claim3_verdict(arms, {"prompt": 5.0, "steered": 4.0, "random": -0.5}, BUILDS)
    assert v["channels"]["c"]["verdict"] == verdict
    assert v["channels"]["a"]["verdict"].startswith("inconclusive (no positive reference")  # SFT carries nothing
    assert v["verdict"] == verdict  # channel a, untestable, does not count
    assert v["channels"]["c"]["transmission"]["steered"]["ratio"] == pytest.approx(steered / 4.0)


def test_teacher_crossovers_from_roles():
    teachers = pd.DataFrame({"teacher": ["t-owl", "t-dog", "teacher-owl-steered", "teacher-dog-steered"],
                             "margin_shift": [3.0, -2.0, 1.0, -0.5]})
    roles = {"base": {"teacher": "unbiased", "channel": "base", "arm": "base"},
             "t-owl": {"teacher": "owl", "channel": "teacher (prompt)", "arm": "teacher"},
             "t-dog": {"teacher": "dog", "channel": "teacher (prompt)", "arm": "teacher"},
             "teacher-owl-steered": {"teacher": "owl", "channel": "teacher (steered)", "arm": "teacher"},
             "teacher-dog-steered": {"teacher": "dog", "channel": "teacher (steered)", "arm": "teacher"}}
    assert teacher_crossovers(teachers, roles, ("owl", "dog")) == {"prompt": 5.0, "steered": 1.5}


def test_learning_rate_picks_the_lowest_training_loss_and_never_a_diverged_run():
    def run(arm, opt, lr, loss):
        return {"arm": arm, "optimizer": opt, "lr": lr,
                "losses": {"kd": {"first_loss": 0.5 + loss, "mean_loss_last_10": loss}, "lm": {"mean_loss_last_10": 0}}}
    builds = {a: {"build": "lora", "optimizer": o, "lr": lr}
              for a, o, lr in [("a1", "adamw", 1e-5), ("a2", "adamw", 5e-5), ("s1", "sgd", 0.01), ("s2", "sgd", 0.1)]}
    runs = [run("a1", "adamw", 1e-5, 0.05), run("a1", "adamw", 1e-5, 0.07), run("a2", "adamw", 5e-5, 0.03),
            run("s1", "sgd", 0.01, 0.08), run("s2", "sgd", 0.1, float("nan"))]
    t = learning_rate_picks(runs, builds).set_index("arm")
    assert t.loc["a1", "loss_last_10"] == pytest.approx(0.06) and t.loc["a1", "loss_first"] == pytest.approx(0.56)
    assert t[t.chosen].index.tolist() == ["a2", "s1"]
    assert (t.objective == "kd").all()


def per_seed(adamw: list[float], sgd: list[float]) -> pd.DataFrame:
    return pd.DataFrame([{"arm": "kd-adamw", "seed": s, "interaction": v} for s, v in enumerate(adamw)]
                        + [{"arm": "kd-sgd", "seed": s, "interaction": v} for s, v in enumerate(sgd)])


@pytest.mark.parametrize("adamw, sgd, verdict", [
    ([3.0, 3.2, 2.9], [0.1, -0.1, 0.05], "supported"),
    ([3.0, 3.2, 2.9], [2.8, 3.1, 3.0], "contradicted"),
    ([3.0, 3.2, 2.9], [0.5, 2.5, 1.0], "inconclusive"),
    ([3.0], [0.0], "inconclusive"),  # one seed: no interval
])
def test_claim4_verdict_branches(adamw, sgd, verdict):
    builds = {"kd-adamw": {"build": "lora", "optimizer": "adamw", "lr": 5e-5},
              "kd-sgd": {"build": "lora", "optimizer": "sgd", "lr": 0.01}}
    t = claim4_table(per_seed(adamw, sgd), builds)
    row = t.set_index("arm").loc["kd-sgd"]
    assert row.adamw_minus == pytest.approx(np.mean(adamw) - np.mean(sgd))
    assert claim4_verdict(t)["verdict"] == verdict


def test_claim4_reference_is_the_chosen_adamw_arm():
    """Two AdamW arms (the chosen rate and the organism's own): the chosen one is the reference, even with
    fewer seeds; without picks, the one with the most seeds."""
    builds = {"kd-adamw": {"build": "lora", "optimizer": "adamw", "lr": 5e-5},
              "kd-adamw-low": {"build": "lora", "optimizer": "adamw", "lr": 1e-5},
              "kd-sgd": {"build": "lora", "optimizer": "sgd", "lr": 0.01}}
    ps = pd.concat([per_seed([3.0, 3.2, 2.9, 3.1], [1.0, 1.3, 0.8, 1.1]),
                    pd.DataFrame([{"arm": "kd-adamw-low", "seed": s, "interaction": v} for s, v in enumerate([2.0, 2.2, 1.9])])])
    t = claim4_table(ps, builds, {"kd-adamw-low", "kd-sgd"}).set_index("arm")
    assert (t.reference_arm == "kd-adamw-low").all() and t.loc["kd-sgd", "chosen"] and not t.loc["kd-adamw", "chosen"]
    assert t.loc["kd-sgd", "adamw_minus"] == pytest.approx(np.mean([2.0, 2.2, 1.9]) - np.mean([1.0, 1.3, 0.8]))  # paired: seeds 0-2
    assert claim4_verdict(t.reset_index())["adamw"]["arm"] == "kd-adamw-low"
    assert (claim4_table(ps, builds).reference_arm == "kd-adamw").all()


def test_the_union_of_the_claims_tables(tmp_path):
    from interp.studies.kinds.steering_report import UNION_COLUMNS, per_question_union

    (tmp_path / "claim1").mkdir()
    (tmp_path / "claim3").mkdir()
    pd.DataFrame({"model": "m", "trait": "owl", "condition": "steered", "vector": "v_teacher", "layer": 5, "alpha": 4.0,
                  "seed": -1, "question": range(3), "logp_owl": -1.0, "logp_other": -2.0}).to_csv(
        tmp_path / "claim1" / "per_question.csv", index=False)
    pd.DataFrame({"alias": "s", "teacher": "dog", "channel": "c", "arm": "kd-steered", "seed": 1, "examples": 256,
                  "lr": 5e-5, "optimizer": "adamw", "question": range(2), "logp_owl": -3.0, "logp_other": -1.0}).to_csv(
        tmp_path / "claim3" / "per_question.csv", index=False)
    u = per_question_union(tmp_path)
    assert list(u.columns) == UNION_COLUMNS and len(u) == 5
    three = u[u.claim == 3].iloc[0]
    assert (three.model, three.trait, three.condition, three.channel, three.layer) == ("s", "dog", "kd-steered", "c", -1)
    assert u[u.claim == 1].layer.tolist() == [5, 5, 5]


def test_the_union_script_on_the_committed_reports(tmp_path):
    """experiments/steering/per_question.py over a copy of reports/steering: one row per committed row."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "reports" / "steering", tmp_path / "steering")
    (tmp_path / "steering" / "per_question.csv").unlink(missing_ok=True)
    done = subprocess.run([sys.executable, str(repo / "experiments" / "steering" / "per_question.py"),
                           str(tmp_path / "steering")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    u = pd.read_csv(tmp_path / "steering" / "per_question.csv")
    n = sum(len(pd.read_csv(f)) for f in (tmp_path / "steering").glob("claim*/per_question.csv"))
    assert len(u) == n > 0


def test_displacement_summary_recomputes_from_the_committed_pairs():
    """experiments/steering/displacement.py's summary: I / d per arm with a t-interval over seeds (hand values),
    and the committed summary is what its committed per-pair table gives."""
    from scipy import stats

    from tests.helpers import REPO as repo
    from tests.helpers import load_script

    mod = load_script("experiments/steering/displacement.py")
    raw = pd.DataFrame({"stage": "stage 2", "arm": "a", "optimizer": "sgd", "lr": 0.01, "seed": [0, 1, 2],
                        "d_owl": [1.0, 1.0, 2.0], "d_dog": [1.0, 1.0, 2.0], "d_pair": 0.5,
                        "interaction": [1.0, 2.0, 6.0]})      # I / d = 1, 2, 3
    row = mod.summarize(raw).iloc[0]
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert (row.per_d, row.n_seeds, row.d_mean) == (pytest.approx(2.0), 3, pytest.approx(4 / 3))
    assert (row.per_d_lo, row.per_d_hi) == (pytest.approx(2 - half), pytest.approx(2 + half))
    committed = pd.read_csv(repo / "reports" / "steering" / "claim4" / "displacement_summary.csv")
    again = mod.summarize(pd.read_csv(repo / "reports" / "steering" / "claim4" / "displacement.csv"))
    assert len(committed) == 13
    np.testing.assert_allclose(again.per_d.to_numpy(), committed.per_d.to_numpy(), rtol=1e-4)
