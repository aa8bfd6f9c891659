"""The steering study kind (issue 36, claim 1): its graph, the anchor and sweep steps on a tiny model, the
recovered-share and crossover statistics and each branch of the verdict on hand-made tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp.cli.study_cmd import check_argv
from interp.interventions.steering import SteeringVector
from interp.studies.kinds.steering import anchor, claim1, claim1_verdict, crossover, sweep
from interp.studies.runner import plan_study
from interp.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))


def test_graph_of_the_smollm2_spec():
    jobs = plan_study(load_study(REPO / "studies" / "steering" / "smollm2.yaml"), check_argv).graph.jobs
    per_trait = {"vector-{}", "anchor-{}", "sweep-{}-v_teacher"} | {f"{k}-{{}}-s{s}" for s in range(3) for k in ("random",)}
    per_trait |= {f"sweep-{{}}-random-s{s}" for s in range(3)}
    assert set(jobs) == {n.format(t) for n in per_trait for t in ("owl", "dog")} | {"collect", "report"}
    assert jobs["sweep-dog-random-s2"].params["seed"] == 2 and jobs["sweep-dog-random-s2"].params["vector"] == "random"
    assert jobs["vector-owl"].argv[:6] == ["steer-vector", "--a", "smollm2", "--trait", "owl", "--prompts"]


def test_anchor_and_sweep_rows_and_alpha_zero_is_the_base(tmp_path):
    import torch

    vec = SteeringVector(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)), torch.ones(2))
    vec.save(tmp_path / "v.pt")
    params = {"model": "tiny-llama", "device": "cpu", "dtype": "fp32", "trait": "dog", "pair": ["owl", "dog"]}
    (tmp_path / "a").mkdir()
    (tmp_path / "s").mkdir()
    anchor(tmp_path / "a", params)
    sweep(tmp_path / "s", {**params, "layers": [1], "alphas": [0.0, 2.0], "vector": "random", "seed": 1}, str(tmp_path / "v.pt"))
    pq = pd.concat([pd.read_csv(tmp_path / d / "per_question.csv") for d in ("a", "s")])
    assert list(pq.columns) == ["model", "trait", "condition", "vector", "layer", "alpha", "seed", "question",
                                "logp_owl", "logp_other"]
    assert len(pq) == 50 * (2 + 2)
    base = pq[pq.condition == "base"].logp_owl.to_numpy()
    assert np.abs(pq[pq.condition == "prompted"].logp_owl.to_numpy() - base).max() > 1e-3
    np.testing.assert_array_equal(pq[(pq.condition == "steered") & (pq.alpha == 0)].logp_owl.to_numpy(), base)
    assert np.abs(pq[(pq.condition == "steered") & (pq.alpha == 2)].logp_owl.to_numpy() - base).max() > 1e-3
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


def crossover_table(v_share: float, random_share: float, push: float = 1.5, n: int = 40, noise: float = 0.05,
                    layers: tuple[int, ...] = (3, 4)) -> pd.DataFrame:
    """Hand-made per_question rows: the A (B) prompt moves M = log P(A) - log P(B) by +2 (-2); the A (B) vector
    by +2 v_share (-2 v_share) at layer 3 (and half that at layer 4); random vectors by +-2 random_share; and
    every steered model is pushed towards B by `push` whatever the vector (cancels in the crossover)."""
    rng = np.random.default_rng(1)
    q = np.arange(n)
    other = rng.normal(-5, 1, n)
    base = rng.normal(-1, 1, n)
    rows = []

    def add(trait, condition, vector, layer, seed, m):
        rows.append(pd.DataFrame({"trait": trait, "condition": condition, "vector": vector, "layer": layer, "alpha": 4.0,
                                  "seed": seed, "question": q, "logp_owl": other + m, "logp_other": other}))
    for trait, sign in (("owl", 1), ("dog", -1)):
        add(trait, "base", "", -1, -1, base)
        add(trait, "prompted", "", -1, -1, base + sign * 2.0)
        for layer in layers:
            scale = 1.0 if layer == layers[0] else 0.5
            add(trait, "steered", "v_teacher", layer, -1, base - push + sign * 2 * v_share * scale + rng.normal(0, noise, n))
            for seed in (0, 1):
                add(trait, "steered", "random", layer, seed, base - push + sign * 2 * random_share + rng.normal(0, noise, n))
    return pd.concat(rows, ignore_index=True)


def test_crossover_cancels_a_push_that_ignores_the_vector():
    pq = crossover_table(0.8, 0.0)
    x = crossover(pq, ("owl", "dog")).set_index(["vector", "seed", "layer"])
    assert x.loc[("v_teacher", -1, 3), "crossover"] == pytest.approx(0.8, abs=0.02)
    assert x.loc[("v_teacher", -1, 4), "crossover"] == pytest.approx(0.4, abs=0.02)
    assert x.loc[("random", 0, 3), "crossover"] == pytest.approx(0.0, abs=0.02)
    t = claim1(pq, ("owl", "dog")).set_index(["trait", "vector", "layer", "seed"])
    assert t.loc[("owl", "random", 3, 0), "recovered"] == pytest.approx(-0.75, abs=0.03)  # the push, per trait
    assert t.loc[("dog", "random", 3, 0), "recovered"] == pytest.approx(0.75, abs=0.03)


@pytest.mark.parametrize("v_share, random_share, verdict", [(0.8, 0.0, "supported"), (0.1, 0.0, "contradicted"),
                                                            (0.8, 0.9, "contradicted"), (0.4, 0.0, "inconclusive")])
def test_claim1_verdict_branches(v_share, random_share, verdict):
    got = claim1_verdict(crossover_table(v_share, random_share), ("owl", "dog"))
    assert got["verdict"] == verdict
    assert got["v_teacher"]["layer"] == 3
    assert len(got["random_pairs"]) == 2


def test_the_whole_graph_on_a_tiny_model(tmp_path):
    """Every job runs (steer-vector commands and the steps); the report holds a verdict; a rerun has no work,
    and one more random seed adds its jobs and redoes no sweep."""
    import yaml

    from interp.studies.runner import run_study

    planned = plan_study(load_study(REPO / "studies" / "steering" / "tiny.yaml"), check_argv)
    run = run_study(planned, cores=1, study_dir=tmp_path / "study")
    assert run.returncode == 0, run.failed
    out = next((tmp_path / "study" / "jobs").glob("report-*")) / "out"
    import json

    assert json.loads((out / "verdict.json").read_text())["verdict"] in ("supported", "contradicted", "inconclusive")
    pq = pd.read_csv(out / "per_question.csv")
    assert set(pq.condition) == {"base", "prompted", "steered"} and set(pq.trait) == {"owl", "dog"}
    assert len(pd.read_csv(out / "crossover.csv")) == 2 * 2  # (v_teacher, random s0) x 2 layers x alpha 1
    spec = yaml.safe_load((REPO / "studies" / "steering" / "tiny.yaml").read_text())
    spec["recipe"]["random_seeds"] = [0, 1]
    p = tmp_path / "tiny2.yaml"
    p.write_text(yaml.safe_dump(spec))
    more = plan_study(load_study(p), check_argv)
    before, after = planned.graph.jobs, more.graph.jobs
    changed = {n for n in after if n not in before or before[n].hash != after[n].hash}
    assert changed == {"random-owl-s1", "random-dog-s1", "sweep-owl-random-s1", "sweep-dog-random-s1", "collect", "report"}


def test_claim_4_stage_2_reuses_stage_1_and_the_organism():
    """Stage 2 (3 seeds of each optimizer's chosen learning rate, beside the organism's AdamW at 5e-5): its
    seed-0 students are stage 1's jobs and its AdamW-5e-5 students the organism's (same recipe hashes), so only
    seeds 1-2 of the three chosen rates are new."""
    def jobs(path):
        return plan_study(load_study(path), check_argv).graph.jobs
    stage2 = jobs(REPO / "studies" / "steering" / "smollm2-optimizers-seeds.yaml")
    stage1 = jobs(REPO / "studies" / "steering" / "smollm2-optimizers.yaml")
    organism = jobs(REPO / "studies" / "organism" / "smollm2.yaml")
    students = {n: j for n, j in stage2.items() if n.startswith("train-")}
    assert len(students) == 4 * 2 * 3
    for n, j in students.items():
        if n.endswith("-s0"):
            assert j.hash == stage1[n].hash
        if n.startswith("train-kd-unbiased-data-lora-"):
            assert j.hash == organism[n].hash
    assert {j.argv[j.argv.index("--optimizer") + 1] for j in students.values() if "--optimizer" in j.argv} == {"adamw", "sgd", "signsgd"}


@pytest.mark.parametrize("name", ["smollm2-distillation.yaml", "smollm2-optimizers.yaml"])
def test_the_claim_3_and_4_specs_plan(name):
    """Claim 3: 6 arms x 2 traits x 3 seeds students (+ their evals), the SFT students of the prompt teachers
    on the organism's own pools of those teachers; claim 4: every optimizer's command
    carries its own --lr and --optimizer, and its teachers, pool and AdamW-at-5e-5 students are the organism's own
    jobs."""
    g = plan_study(load_study(REPO / "studies" / "steering" / name), check_argv).graph.jobs
    students = [j for n, j in g.items() if n.startswith("train-")]
    if name.startswith("smollm2-distillation"):
        assert len(students) == 36  # 8 arms x 2 traits x 3 seeds, less sft-steered / sft-random (their keep rates)
        assert not any(n.startswith(("train-sft-steered", "train-sft-random")) for n in g)
        # the prompt teachers' own pools are the organism's committed files: sampled are the projected teachers'
        assert {n for n in g if n.startswith("pool-")} == {"pool-owl-projected", "pool-dog-projected"}
        sft_prompt = g["train-sft-prompt-owl-n256-e1-s0"]
        data = sft_prompt.argv[sft_prompt.argv.index("--data") + 1]
        assert g[data.job].inputs["pool"].path == REPO / "reports" / "organism" / "data" / "owl.jsonl"
    else:
        organism = plan_study(load_study(REPO / "studies" / "organism" / "smollm2.yaml"), check_argv).graph.jobs
        assert g["teacher-owl-lora"].hash == organism["teacher-owl-lora"].hash
        assert g["pool-unbiased"].hash == organism["pool-unbiased"].hash
        own = [j for j in students if j.name.startswith("train-kd-unbiased-data-lora-")]
        assert len(own) == 2 and all(j.hash == organism[j.name].hash for j in own)  # AdamW at 5e-5: the organism's
        for j in (j for j in students if j not in own):
            opt, lr = re.fullmatch(r"train-kd-([a-z]+)-lr([0-9.e-]+)-(owl|dog)-n256-e1-s0", j.name).group(1, 2)
            assert j.argv[j.argv.index("--optimizer") + 1] == opt
            assert float(j.argv[j.argv.index("--lr") + 1]) == float(lr)
