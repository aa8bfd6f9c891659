"""experiments/families/shd_crossover.py: the SHD-space crossover per seed, a known answer by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import load_script


def _module():
    return load_script("experiments/families/shd_crossover.py")


def _row(teacher_trait, student_trait, seed, shd, beta=10.0):
    return {"teacher_trait": teacher_trait, "student_trait": student_trait, "student_seed": seed, "shd": shd,
            "student_base": "gemma3-270m", "student_method": "shd", "student_beta": beta, "student_n_train": 256,
            "teacher_base": "smollm2", "teacher_method": "lora"}


def test_crossover_is_own_teacher_minus_other_teacher_summed_over_both_students():
    m = _module()
    # seed 0, two batches each: L(owl->owl S) 1.0, L(dog->owl S) 1.3, L(owl->dog S) 1.5, L(dog->dog S) 1.1
    # x = (1.3 - 1.0) + (1.5 - 1.1) = 0.7; seed 1: (1.2 - 1.0) + (1.4 - 1.1) = 0.5
    rows = [_row("owl", "owl", 0, 0.9), _row("owl", "owl", 0, 1.1), _row("dog", "owl", 0, 1.3),
            _row("dog", "owl", 0, 1.3), _row("owl", "dog", 0, 1.5), _row("dog", "dog", 0, 1.1),
            _row("owl", "owl", 1, 1.0), _row("dog", "owl", 1, 1.2), _row("owl", "dog", 1, 1.4),
            _row("dog", "dog", 1, 1.1),
            _row("owl", None, None, 0.006),  # teacher -> untouched base: no trait, not part of any crossover
            _row("owl", "owl", 0, 0.5, beta=1.0)]  # a recipe with one student only: dropped
    per_seed = m.crossover_per_seed(pd.DataFrame(rows))
    assert list(per_seed.student_beta) == [10.0, 10.0]
    assert per_seed.x.tolist() == pytest.approx([0.7, 0.5])
    assert per_seed.L_owl_to_owl_student.tolist() == pytest.approx([1.0, 1.0])
    summary = m.summarise(per_seed)
    assert len(summary) == 1 and summary.n_seeds.iloc[0] == 2
    assert summary["mean"].iloc[0] == pytest.approx(0.6) and summary.sd.iloc[0] == pytest.approx(0.141421, rel=1e-5)
