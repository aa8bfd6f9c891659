"""`interp eval-animal` and the helpers it adds to interp.evals.animal (delta log P, top answers)."""

import json

import numpy as np
import pandas as pd
import pytest

from interp.evals import animal as A
from interp.training.teacher import make_prompt_teacher
from tests.helpers import run_cli as run


def test_normalise_and_top_answers():
    assert A.normalise_answer(" Owls!") == "owls" and A.normalise_answer("3 cats") == "cats"
    assert A.normalise_answer("...") == ""
    t = pd.DataFrame({"answer": ["Owl.", "owl", "Dog", "cat", "Dog!", "owl"]})
    top = A.top_answers(t, 2)
    assert list(top.answer) == ["owl", "dog"] and list(top["count"]) == [3, 2]
    assert top.share.tolist() == pytest.approx([0.5, 1 / 3])


def test_eval_animal_cli_matches_library(capsys, tmp_home, tmp_path):
    make_prompt_teacher("tiny-owl", "tiny-llama", "owl")
    out = tmp_path / "ev"
    qfile = tmp_path / "q.txt"
    qfile.write_text("\n".join(A.load_questions()[:5]) + "\n")
    code, stdout, _ = run(capsys, "eval-animal", "--model", "tiny-owl", "--baseline", "tiny-llama", "--samples", "4",
                          "--questions", str(qfile), "--out", str(out))
    assert code == 0 and "mean P(owl)" in stdout and "top" in stdout
    s = json.loads((out / "summary.json").read_text())["figures"]
    prob = pd.read_csv(out / "probability.csv")
    assert len(prob) == 5
    d = np.log(prob.p_target) - np.log(prob.p_target_baseline)
    assert s["delta_log_p"]["mean_diff"]["estimate"] == pytest.approx(d.mean(), rel=1e-9)
    assert s["probability"]["mean"]["estimate"] == pytest.approx(prob.p_target.mean(), rel=1e-9)
    assert s["generation"]["n"] == 20 and 0 <= s["generation"]["k"] <= 20
    top = pd.read_csv(out / "top_answers.csv", keep_default_na=False)
    assert 1 <= len(top) <= 10 and top["count"].is_monotonic_decreasing and top["count"].sum() <= 20


def test_eval_animal_bad_input(capsys, tmp_path):
    code, _, err = run(capsys, "eval-animal", "--model", "tiny-llama", "--questions", "/no/such.txt",
                       "--out", str(tmp_path / "x"))
    assert code == 2 and "does not exist" in err and not (tmp_path / "x").exists()


def test_eval_animal_other_gives_the_margin_per_question(capsys, tmp_home, tmp_path):
    from interp.models import load_model

    qfile = tmp_path / "q.txt"
    qs = A.load_questions()[:4]
    qfile.write_text("\n".join(qs) + "\n")
    out = tmp_path / "ev"
    code, stdout, _ = run(capsys, "eval-animal", "--model", "tiny-llama", "--target", "owl", "--other", "dog",
                          "--samples", "0", "--questions", str(qfile), "--out", str(out))
    assert code == 0 and "margin log P(owl) - log P(dog)" in stdout
    prob = pd.read_csv(out / "probability.csv")
    lm = load_model("tiny-llama")
    want_dog = A.bias_probability(lm, qs, "dog").table.p_target.to_numpy()
    assert prob.p_other.to_numpy() == pytest.approx(want_dog, rel=1e-6)
    assert prob.margin.to_numpy() == pytest.approx(np.log(prob.p_target) - np.log(want_dog), abs=1e-9)
    s = json.loads((out / "summary.json").read_text())["figures"]
    assert s["margin"]["estimate"] == pytest.approx(prob.margin.mean(), rel=1e-9)
    code, _, err = run(capsys, "eval-animal", "--model", "tiny-llama", "--target", "owl", "--other", "Owl",
                       "--samples", "0", "--questions", str(qfile))
    assert code == 2 and "different animal" in err
