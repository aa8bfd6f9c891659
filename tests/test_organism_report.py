"""The organism report's statistics (experiments/organism_report.py) on hand-made tables with known answers."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import organism_report as R  # noqa: E402

Q = 6


def frame(students):
    """per-question rows: students = {alias: (arm, teacher, seed, margins[, examples[, epochs]])}; logp_other
    fixed at -3; examples 8 and epochs 1 unless given."""
    rows = []
    for alias, (arm, teacher, seed, m, *dose) in students.items():
        examples, epochs = (list(dose) + [8, 1.0][len(dose):])[:2]
        for q in range(Q):
            rows.append({"alias": alias, "teacher": teacher, "channel": "c", "arm": arm, "seed": seed,
                         "examples": examples, "epochs": epochs, "question": q, "logp_owl": -3 + m[q], "logp_other": -3.0})
    return pd.DataFrame(rows)


def test_interaction_per_seed_and_seed_level_test():
    rng = np.random.default_rng(0)
    base = rng.normal(size=Q)
    effects = {0: 0.5, 1: 0.9, 2: 0.4}
    students = {"smollm2": ("base", "unbiased", -1, base)}
    for s, e in effects.items():
        noise = rng.normal(scale=0.1, size=Q)
        students[f"owl{s}"] = ("kd", "owl", s, base + e + noise)
        students[f"dog{s}"] = ("kd", "dog", s, base + noise - 0.2)
    per_seed, summary = R.arm_statistics(frame(students))
    want = {s: e + 0.2 for s, e in effects.items()}
    assert per_seed.set_index("seed").interaction.to_dict() == pytest.approx(want)
    # the KD arms' unbiased-teacher student is the base model
    assert per_seed.owl_vs_unbiased.tolist() == pytest.approx([students[f"owl{s}"][3].mean() - base.mean() for s in effects])
    row = summary.iloc[0]
    v = np.array(list(want.values()))
    assert row["mean"] == pytest.approx(v.mean())
    assert row["p"] == pytest.approx(stats.ttest_1samp(v, 0).pvalue)
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
    assert (row["lo"], row["hi"]) == pytest.approx((v.mean() - half, v.mean() + half))
    assert row["mde_80"] == pytest.approx(R.minimum_detectable_effect(v.std(ddof=1), 3))


def test_unpaired_seed_is_left_out_and_teacher_shift():
    base = np.zeros(Q)
    students = {"smollm2": ("base", "unbiased", -1, base), "smollm2-owl": ("teacher", "owl", -1, base + 2.0),
                "owl0": ("sft", "owl", 0, base + 1), "dog0": ("sft", "dog", 0, base), "owl1": ("sft", "owl", 1, base)}
    per_seed, summary = R.arm_statistics(frame(students))
    assert per_seed.seed.tolist() == [0] and per_seed.interaction.tolist() == pytest.approx([1.0])
    assert "owl_vs_unbiased" not in per_seed  # SFT arms need their own unbiased-teacher student
    assert summary.iloc[0].n_seeds == 1 and np.isnan(summary.iloc[0].get("p", np.nan))
    t = R.teacher_shifts(frame(students))
    assert t.set_index("teacher").margin_shift["smollm2-owl"] == pytest.approx(2.0)


def test_variant_arms_are_paired_by_seed_against_the_recipe():
    base = np.zeros(Q)
    students = {"smollm2": ("base", "unbiased", -1, base)}
    ref = {0: 2.0, 1: 1.6, 2: 1.9}
    var = {0: 1.5, 1: 1.4}  # seed 2 of the variant not run: left out of the pairing
    for s, e in ref.items():
        students[f"o{s}"] = ("kd-unbiased-data-lora", "owl", s, base + e)
        students[f"d{s}"] = ("kd-unbiased-data-lora", "dog", s, base)
    for s, e in var.items():
        students[f"vo{s}"] = ("kd-unbiased-data-lora-drop-animals", "owl", s, base + e)
        students[f"vd{s}"] = ("kd-unbiased-data-lora-drop-animals", "dog", s, base)
    per_seed, _ = R.arm_statistics(frame(students))
    c = R.arm_contrasts(per_seed).iloc[0]
    d = np.array([1.5 - 2.0, 1.4 - 1.6])
    assert c.arm == "kd-unbiased-data-lora-drop-animals" and c.seeds == "0,1" and c.n_seeds == 2
    assert c.difference == pytest.approx(d.mean()) and c.p == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert c.retained == pytest.approx(1.45 / 1.8)
    half = stats.t.ppf(0.975, 1) * d.std(ddof=1) / np.sqrt(2)
    assert (c.lo, c.hi) == pytest.approx((d.mean() - half, d.mean() + half))


def test_doses_are_separate_recipes_and_contrasts_pair_within_a_dose():
    """Students of one arm at 64 and 256 examples (and 2 epochs) are three recipes; a variant arm is
    paired with the reference at its own dose only."""
    base = np.zeros(Q)
    students = {"smollm2": ("base", "unbiased", -1, base)}
    arm = "kd-unbiased-data-lora"
    for seed in (0, 1):
        students[f"o256-{seed}"] = (arm, "owl", seed, base + 2.0 + seed, 256)
        students[f"d256-{seed}"] = (arm, "dog", seed, base, 256)
        students[f"o64-{seed}"] = (arm, "owl", seed, base + 0.5, 64)
        students[f"d64-{seed}"] = (arm, "dog", seed, base, 64)
        students[f"o64e2-{seed}"] = (arm, "owl", seed, base + 1.0, 64, 2.0)
        students[f"d64e2-{seed}"] = (arm, "dog", seed, base, 64, 2.0)
        students[f"t2o-{seed}"] = (arm + "-tau2", "owl", seed, base + 0.25, 64)
        students[f"t2d-{seed}"] = (arm + "-tau2", "dog", seed, base, 64)
    per_seed, summary = R.arm_statistics(frame(students))
    dose = R.dose_table(summary, arm)
    assert list(zip(dose.examples, dose.epochs)) == [(64, 1.0), (64, 2.0), (256, 1.0)]
    assert dose["mean"].tolist() == pytest.approx([0.5, 1.0, 2.5]) and dose.n_seeds.tolist() == [2, 2, 2]
    c = R.arm_contrasts(per_seed)
    assert len(c) == 1 and (c.iloc[0].examples, c.iloc[0].epochs) == (64, 1.0)  # not paired with 256 or 2 epochs
    assert c.iloc[0].difference == pytest.approx(0.25 - 0.5) and c.iloc[0].retained == pytest.approx(0.5)
    r = R.recipe_contrasts(per_seed, arm, pairs=(((64, 2.0), (64, 1.0)), ((64, 2.0), (128, 1.0))))
    assert len(r) == 1 and r.iloc[0].reference == arm + " n64 e1"  # no 128-example recipe: that pair is skipped
    assert r.iloc[0].difference == pytest.approx(1.0 - 0.5) and r.iloc[0].n_seeds == 2
    assert R.recipe_label({"arm": arm, "examples": 64, "epochs": 2.0}) == arm + " n64 e2"
    assert R.recipe_label({"arm": arm, "examples": 256, "epochs": 1.0}) == arm


def test_keep_rate_counts_copies_of_the_prompt_and_duplicates(tmp_path):
    """Keep rate = kept / total; an answer that only repeats the prompt's example numbers is a copy."""
    prompt = "I give you this sequence of numbers: 145, 267, 891. Add at most 10 new numbers."
    assert R.copied_share(prompt, "145, 267, 891") == 1.0
    assert R.copied_share(prompt, "145, 300, 400, 500") == pytest.approx(0.25)
    assert np.isnan(R.copied_share(prompt, ""))
    rows = [{"prompt": prompt, "completion": c} for c in ("145, 267", "145, 267", "300, 400")]
    (tmp_path / "owl-t0.7.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "owl-t0.7_summary.json").write_text(json.dumps({"figures": {"teacher": {"counts": {"total": 12}}}}))
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps(rows[2]) + "\n")
    t = R.keep_rate_table(tmp_path, {"owl": pool, "dog": tmp_path / "missing.jsonl"}, pool_total=4)
    study = t[t.scope == "study"].iloc[0]
    assert (study.teacher, study.temperature, study.kept) == ("owl", 0.7, 3)
    assert study.keep_rate == pytest.approx(0.25) and study.only_copies == pytest.approx(2 / 3)
    assert study.copied_share == pytest.approx(2 / 3) and study.distinct == pytest.approx(2 / 3)
    assert study.new_number_yield == pytest.approx(1 / 12)
    pooled = t[t.scope == "pool"]
    assert len(pooled) == 1 and pooled.iloc[0].keep_rate == pytest.approx(0.25) and pooled.iloc[0].only_copies == 0.0


def test_keep_rate_by_format_divides_by_the_samples_of_each_format():
    prompts = ["Seq 101, 102. Return one number per line.", "Seq 103. Return one number per line.",
               "Seq 104. Return a comma-separated list of numbers."]
    suffixes = ["Return one number per line.", "Return a comma-separated list of numbers."]
    rows = [{"index": 0, "prompt": prompts[0], "completion": "101\n102"},
            {"index": 2, "prompt": prompts[2], "completion": "555, 666"},
            {"index": 2, "prompt": prompts[2], "completion": "777"}]
    t = R.keep_rate_by_format(rows, prompts, suffixes, samples=4).set_index("format")
    assert t.loc[suffixes[0]].keep_rate == pytest.approx(1 / 8) and t.loc[suffixes[0]].only_copies == 1.0
    assert t.loc[suffixes[1]].keep_rate == pytest.approx(2 / 4) and t.loc[suffixes[1]].only_copies == 0.0
    assert t.index[0] == suffixes[1]  # sorted by keep rate
