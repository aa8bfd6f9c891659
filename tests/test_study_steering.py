"""The steering study kind (issue 36, claim 1): its graph, the sweep step on a tiny model, and the
recovered-share statistic on a hand-made table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp.cli.study_cmd import check_argv
from interp.interventions.steering import SteeringVector
from interp.studies.kinds.steering import claim1, sweep
from interp.studies.runner import plan_study
from interp.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))


def test_graph_of_the_smollm2_spec():
    jobs = plan_study(load_study(REPO / "studies" / "steering" / "smollm2.yaml"), check_argv).graph.jobs
    assert set(jobs) == {"vector-owl", "vector-dog", "random-owl-s0", "random-dog-s0", "sweep-owl", "sweep-dog",
                         "collect", "report"}
    assert jobs["vector-owl"].argv[:6] == ["steer-vector", "--a", "smollm2", "--trait", "owl", "--prompts"]


def test_sweep_rows_and_alpha_zero_is_the_base(tmp_path):
    import torch

    vec = SteeringVector(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)), torch.ones(2))
    vec.save(tmp_path / "v.pt")
    (tmp_path / "r").mkdir()
    vec.random_like(1).save(tmp_path / "r" / "vector.pt")
    sweep(tmp_path, {"model": "tiny-llama", "device": "cpu", "dtype": "fp32", "trait": "dog", "pair": ["owl", "dog"],
                     "layers": [1], "alphas": [0.0, 2.0]}, str(tmp_path / "v.pt"), random_s1=str(tmp_path / "r"))
    pq = pd.read_csv(tmp_path / "per_question.csv")
    assert list(pq.columns) == ["model", "trait", "condition", "vector", "layer", "alpha", "seed", "question",
                                "logp_owl", "logp_other"]
    assert len(pq) == 50 * (2 + 2 * 2)
    base = pq[pq.condition == "base"].logp_owl.to_numpy()
    for kind in ("v_teacher", "random"):
        zero = pq[(pq.vector == kind) & (pq.alpha == 0)].logp_owl.to_numpy()
        np.testing.assert_array_equal(zero, base)
        moved = pq[(pq.vector == kind) & (pq.alpha == 2)].logp_owl.to_numpy()
        assert np.abs(moved - base).max() > 1e-3
    assert set(pq[pq.vector == "random"].seed) == {1}


def test_recovered_share_known_answer():
    q = np.arange(20)
    rng = np.random.default_rng(0)
    other = rng.normal(-5, 1, 20)
    rows = []
    for trait, sign in (("owl", 1), ("dog", -1)):
        base = rng.normal(-6, 1, 20)
        shift = 2.0 + rng.normal(0, 0.1, 20)

        def add(condition, vector, layer, m):  # m = margin of `trait` over the other animal
            own = other + m
            owl, oth = (own, other) if trait == "owl" else (other, own)
            rows.append(pd.DataFrame({"trait": trait, "condition": condition, "vector": vector, "layer": layer,
                                      "alpha": 1.0, "seed": -1, "question": q, "logp_owl": owl, "logp_other": oth}))
        add("base", "", -1, base)
        add("prompted", "", -1, base + shift)
        add("steered", "v_teacher", 3, base + 0.5 * shift)
        add("steered", "random", 3, base)
    t = claim1(pd.concat(rows), ("owl", "dog")).set_index(["trait", "vector"])
    for trait in ("owl", "dog"):
        assert t.loc[(trait, "v_teacher"), "recovered"] == pytest.approx(0.5)
        assert t.loc[(trait, "random"), "recovered"] == pytest.approx(0.0, abs=1e-12)
        assert t.loc[(trait, "v_teacher"), "recovered_lo"] < 0.5 < t.loc[(trait, "v_teacher"), "recovered_hi"]
