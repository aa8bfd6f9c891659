"""The steering_students study kind (issue 36, claim 2): spec roles, the whole graph on tiny students, the
cosines step's known answer, and the sufficiency / necessity statistics and each verdict branch on
hand-made tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.interventions.steering import SteeringVector
from interp.studies.kinds.steering_students import claim2_verdict, cosines, fractions, over_seeds
from interp.studies.runner import plan_study, run_study
from interp.studies.spec import load_study


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))


def spec(tmp_path: Path, models: dict[str, str], **recipe) -> Path:
    p = tmp_path / "students.yaml"
    p.write_text(yaml.safe_dump({"study": "students-tiny", "kind": "steering_students", "models": models,
                                 "recipe": {"n_prompts": 6, "tile_layers": [1], "alphas": [0.6], "n_random": 50,
                                            **recipe}}))
    return p


def make_students(seeds=(0, 1)) -> dict[str, str]:
    """tiny-llama students (every block's weights moved; one lineage): owl students moved along one seeded
    direction, dog students along another, plus per-seed noise."""
    from interp.models import load_model
    from interp.models.store import save_model

    models = {"base": "tiny-llama"}
    for trait, shift in (("owl", 1), ("dog", 2)):
        for s in seeds:
            lm = load_model("tiny-llama")
            g, n = torch.Generator().manual_seed(shift), torch.Generator().manual_seed(100 + 10 * shift + s)
            with torch.no_grad():
                for name, p in lm.model.named_parameters():
                    if ".layers." in name and p.dim() == 2:
                        p.add_(0.05 * torch.randn(p.shape, generator=g) + 0.01 * torch.randn(p.shape, generator=n))
            alias = f"tiny-student-{trait}-s{s}"
            save_model(alias, lm.model, lm.tokenizer, {"kind": "made", "source": "test"})
            models[f"student-{trait}-s{s}"] = alias
    return models


def test_roles_of_the_students_pattern(tmp_path):
    models = {"base": "tiny-llama", "student-owl-s0": "tiny-llama", "student-dog-s0": "tiny-mistral"}
    assert load_study(spec(tmp_path, models)).spec.models["student-dog-s0"] == "tiny-mistral"
    with pytest.raises(UserError, match="unknown key 'models.teacher'"):
        load_study(spec(tmp_path, {**models, "teacher": "x"}))
    with pytest.raises(UserError, match="same seeds"):
        plan_study(load_study(spec(tmp_path, {**models, "student-owl-s1": "tiny-llama"})), check_argv)


def test_the_whole_graph_on_tiny_students(tmp_path):
    planned = plan_study(load_study(spec(tmp_path, make_students())), check_argv)
    jobs = planned.graph.jobs
    assert {"vteacher-owl", "vstudent-dog-s1", "score-owl-s0", "anchor", "cosines", "collect", "report"} <= set(jobs)
    assert jobs["vstudent-dog-s1"].argv[:5] == ["steer-vector", "--a", "tiny-student-dog-s1", "--b", "tiny-llama"]
    run = run_study(planned, cores=1, study_dir=tmp_path / "study")
    assert run.returncode == 0, run.failed
    out = next((tmp_path / "study" / "jobs").glob("report-*")) / "out"
    pq = pd.read_csv(out / "per_question.csv")
    assert list(pq.columns) == ["model", "trait", "seed", "condition", "vector", "layer", "alpha", "question",
                                "logp_owl", "logp_other"]
    assert len(pq) == 50 * (1 + 4 * (1 + 2 * 2))  # base; per student: itself, (sufficiency, necessity) x (v, random)
    import json

    v = json.loads((out / "verdict.json").read_text())
    assert v["verdict"] in ("supported", "contradicted", "inconclusive")
    assert set(v) >= {"sufficiency", "necessity", "alignment"}
    s = pd.read_csv(out / "claim2.csv")
    assert set(s.condition) == {"sufficiency", "necessity"} and (s.n_seeds == 2).all()
    cos = pd.read_csv(out / "cosines.csv")
    assert len(cos) == 2 * 2 * 2  # seeds x traits x layers


def test_cosines_known_answer(tmp_path):
    """Students whose vectors are c x v_teacher of their own trait plus a shared 'trained on numbers' part:
    the crossover cosine is 1 and the random null is about 2.5 / sqrt(d) for one layer."""
    g = torch.Generator().manual_seed(0)
    d = 400
    vt = {t: torch.randn(1, d, generator=g) for t in ("owl", "dog")}
    shared = 5 * torch.randn(1, d, generator=g)
    paths = {}
    for t in ("owl", "dog"):
        SteeringVector(vt[t], torch.ones(1)).save(tmp_path / f"t-{t}.pt")
        paths[f"vteacher_{t}"] = str(tmp_path / f"t-{t}.pt")
        for s in (0, 1):
            SteeringVector(0.3 * vt[t] + shared, torch.ones(1)).save(tmp_path / f"s-{t}{s}.pt")
            paths[f"vstudent_{t}_s{s}"] = str(tmp_path / f"s-{t}{s}.pt")
    cosines(tmp_path, {"pair": ["owl", "dog"], "seeds": [0, 1], "random_seed": 0, "n_random": 2000}, **paths)
    c = pd.read_csv(tmp_path / "cosines.csv")
    assert c.cos_crossover.to_numpy() == pytest.approx(1.0, abs=1e-6)
    assert (c.cos_own < 0.3).all()  # the shared part dominates each student's own vector
    null = yaml.safe_load((tmp_path / "null.json").read_text())["max_abs_cos_q95"]
    assert null == pytest.approx(1.96 / np.sqrt(d), rel=0.25)


def outcome_table(suff: float, nec: float, random_suff: float = 0.0, random_nec: float = 0.0, n: int = 40,
                  seeds=(0, 1, 2), noise: float = 0.05) -> pd.DataFrame:
    """Hand-made per_question rows: the students' crossover margin is 3 nats (owl student +1.5, dog -1.5 around
    the base); the base + v_S moves it by 3 suff, the students replaced along v_S keep 3 (1 - nec); the random
    direction moves / keeps by random_suff / (1 - random_nec)."""
    rng = np.random.default_rng(2)
    q = np.arange(n)
    other = rng.normal(-5, 1, n)
    base = rng.normal(-1, 1, n)
    rows = []

    def add(trait, seed, condition, vector, layer, m):
        rows.append(pd.DataFrame({"model": "x", "trait": trait, "seed": seed, "condition": condition, "vector": vector,
                                  "layer": layer, "alpha": 0.6 if condition == "sufficiency" else 1.0, "question": q,
                                  "logp_owl": other + m, "logp_other": other}))
    for s in seeds:
        for trait, sign in (("owl", 1), ("dog", -1)):
            e = rng.normal(0, noise, n)
            add(trait, s, "student", "", -1, base + sign * 1.5 + e)
            for layer, scale in ((8, 1.0), (14, 0.5)):
                add(trait, s, "sufficiency", "v_student", layer, base + sign * 1.5 * suff * scale + rng.normal(0, noise, n))
                add(trait, s, "sufficiency", "random", layer, base + sign * 1.5 * random_suff + rng.normal(0, noise, n))
                add(trait, s, "necessity", "v_student", layer, base + sign * 1.5 * (1 - nec * scale) + rng.normal(0, noise, n))
                add(trait, s, "necessity", "random", layer, base + sign * 1.5 * (1 - random_nec) + rng.normal(0, noise, n))
    return pd.concat(rows, ignore_index=True)


def cos_table(value: float, seeds=(0, 1, 2)) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame([{"seed": s, "trait": t, "layer": layer, "cos_own": 0.0, "cos_other": 0.0,
                          "cos_crossover": value * (layer == 5) + rng.normal(0, 0.01), "norm_student": 1.0}
                         for s in seeds for t in ("owl", "dog") for layer in range(8)])


def test_fractions_known_answer():
    f = fractions(outcome_table(0.7, 0.6), ("owl", "dog")).set_index(["seed", "condition", "vector", "layer"])
    assert f.loc[(0, "sufficiency", "v_student", 8), "fraction"] == pytest.approx(0.7, abs=0.03)
    assert f.loc[(1, "sufficiency", "v_student", 14), "fraction"] == pytest.approx(0.35, abs=0.03)
    assert f.loc[(2, "necessity", "v_student", 8), "fraction"] == pytest.approx(0.6, abs=0.03)
    assert f.loc[(0, "necessity", "random", 8), "fraction"] == pytest.approx(0.0, abs=0.03)
    lo, hi = f.loc[(0, "necessity", "v_student", 8), ["lo", "hi"]]
    assert lo < 0.6 < hi
    s = over_seeds(f.reset_index()).set_index(["condition", "layer"])
    assert s.loc[("sufficiency", 8), "v_minus_random"] == pytest.approx(0.7, abs=0.03)
    assert s.loc[("sufficiency", 8), "seed_p"] < 0.01


@pytest.mark.parametrize("suff, nec, rsuff, cos, verdict", [
    (0.8, 0.8, 0.0, 0.5, "supported"),
    (0.1, 0.8, 0.0, 0.5, "contradicted"),      # not sufficient
    (0.8, 0.8, 0.8, 0.5, "contradicted"),      # sufficient, but a random direction is as well
    (0.8, 0.8, 0.4, 0.5, "inconclusive"),      # sufficient, a random direction half as much
    (0.8, 0.8, 0.0, 0.0, "inconclusive"),      # not aligned with v_teacher
])
def test_claim2_verdict_branches(suff, nec, rsuff, cos, verdict):
    v = claim2_verdict(outcome_table(suff, nec, random_suff=rsuff), cos_table(cos), 0.2, ("owl", "dog"))
    assert v["verdict"] == verdict
    assert v["sufficiency"]["layer"] == 8
    if cos == 0.0:
        assert v["alignment"]["verdict"] == "contradicted"
    if cos == 0.5:
        assert v["alignment"]["verdict"] == "supported" and v["alignment"]["best_layer"] == 5
