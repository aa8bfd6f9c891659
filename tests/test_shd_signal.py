"""experiments/families/shd_signal.py: the trainer's SHD term between two models without training. A model
against itself is 0 (its maps are its own target); two different models are not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.helpers import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "families" / "shd_signal.py"


def _module():
    return load_script("experiments/families/shd_signal.py")


def test_recipe_takes_the_trait_from_the_teacher_and_beta_and_seed_from_the_training_record():
    recipe = _module().recipe
    student = {"base": "gemma3-270m", "teacher": "t-owl", "n_examples": 256,
               "training": {"config": {"method": "full", "seed": 2}, "distill": {"kind": "shd", "beta": 10.0}}}
    assert recipe("s", student, {"trait": "owl"}) == {"base": "gemma3-270m", "trait": "owl", "method": "shd",
                                                      "beta": 10.0, "seed": 2, "n_train": 256}
    teacher = {"base": "smollm2", "trait": "dog", "training": {"config": {"method": "lora", "seed": 0}}}
    assert recipe("t", teacher, None) == {"base": "smollm2", "trait": "dog", "method": "lora", "beta": None,
                                          "seed": 0, "n_train": None}
    assert recipe("tiny-llama", None, None) == {"base": "tiny-llama", "trait": None, "method": None, "beta": None,
                                                "seed": None, "n_train": None}


def test_shd_between_a_model_and_itself_is_zero_and_between_two_models_is_not(tmp_path):
    rows = [{"prompt": f"Continue: {i}, {i + 1}, {i + 2}.", "completion": f"{i + 3}, {i + 4}"} for i in range(6)]
    (tmp_path / "n.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tmp_path / "n.jsonl"), "--n", "6",
                           "--batch-size", "4", "--max-len", "256", "--pair", "tiny-llama:tiny-llama",
                           "--pair", "tiny-gemma3:tiny-llama", "--out", str(tmp_path / "s.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    t = pd.read_csv(tmp_path / "s.csv")
    assert len(t) == 4 and set(t.batch) == {0, 1} and (t.examples == 6).all()
    assert set(t.teacher_base) == {"tiny-llama", "tiny-gemma3"} and (t.student_base == "tiny-llama").all()
    assert t.student_trait.isna().all() and t.teacher_beta.isna().all()
    by = t.groupby("teacher").shd.mean()
    assert abs(by["tiny-llama"]) < 1e-6 and by["tiny-gemma3"] > 0.1
