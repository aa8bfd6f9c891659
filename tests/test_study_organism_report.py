"""The organism report (interp/studies/kinds/organism_report.py): the committed report rebuilt byte for byte
from the committed raw tables, and the statistics on hand-made tables with known answers."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import interp.studies.kinds.organism_report as R
from interp.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "reports" / "organism"
SPEC = REPO / "studies" / "organism" / "smollm2.yaml"
TRAITS = ("owl", "dog")
DOSE = (256, 1.0)
# every table `report` writes; interaction.png is byte-stable across runs with one matplotlib version
# (its PNG metadata names the version), so it is compared too
REPORT_FILES = ["per_question.csv", "per_seed.csv", "arms.csv", "teachers.csv", "contrasts.csv", "models.json",
                "tables.md", "interaction.png", "keep_rate.csv", "keep_rate_by_format.csv"]
Q = 6


def test_committed_report_is_rebuilt_byte_for_byte_from_the_raw_tables(tmp_path):
    R.report(RAW, tmp_path, load_study(SPEC).recipe)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(REPORT_FILES)
    differ = [f for f in REPORT_FILES if (tmp_path / f).read_bytes() != (RAW / f).read_bytes()]
    assert differ == []


def test_roles_name_one_base_and_every_evaluated_model_has_a_role_or_a_run():
    roles = R.read_roles(RAW)
    base = R.base_of(roles)
    assert roles[base]["teacher"] == R.UNBIASED
    evaluated = {p.stem for p in (RAW / "evals").glob("*.csv")}
    students = {json.loads(p.read_text())["alias"] for p in (RAW / "runs").glob("*.json")}
    assert evaluated == students | set(roles) and not students & set(roles)
    with pytest.raises(ValueError, match="base"):
        R.base_of({k: v for k, v in roles.items() if k != base})


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
    students = {"the-base": ("base", "unbiased", -1, base)}
    for s, e in effects.items():
        noise = rng.normal(scale=0.1, size=Q)
        students[f"owl{s}"] = ("kd", "owl", s, base + e + noise)
        students[f"dog{s}"] = ("kd", "dog", s, base + noise - 0.2)
    per_seed, summary = R.arm_statistics(frame(students), TRAITS)
    want = {s: e + 0.2 for s, e in effects.items()}
    assert per_seed.set_index("seed").interaction.to_dict() == pytest.approx(want)
    # the KD arms' unbiased-teacher student is the base model (the rows with arm "base")
    assert per_seed.unbiased_student.tolist() == ["the-base"] * 3
    assert per_seed.owl_vs_unbiased.tolist() == pytest.approx([students[f"owl{s}"][3].mean() - base.mean() for s in effects])
    row = summary.iloc[0]
    v = np.array(list(want.values()))
    assert row["mean"] == pytest.approx(v.mean())
    assert row["p"] == pytest.approx(stats.ttest_1samp(v, 0).pvalue)
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
    assert (row["lo"], row["hi"]) == pytest.approx((v.mean() - half, v.mean() + half))
    assert row["mde_80"] == pytest.approx(R.minimum_detectable_effect(v.std(ddof=1), 3))


def test_the_trait_pair_names_the_columns():
    """Traits (cat, owl): the target is cat; columns and the crossover follow the recipe's pair."""
    base = np.zeros(Q)
    students = {"b": ("base", "unbiased", -1, base), "c0": ("kd", "cat", 0, base + 1.0), "o0": ("kd", "owl", 0, base)}
    pq = frame(students).rename(columns={"logp_owl": "logp_cat"})
    per_seed, _ = R.arm_statistics(pq, ("cat", "owl"))
    assert {"cat_student", "owl_student", "cat_margin", "cat_vs_unbiased"} <= set(per_seed.columns)
    assert per_seed.interaction.tolist() == pytest.approx([1.0])


def test_unpaired_seed_is_left_out_and_teacher_shift():
    base = np.zeros(Q)
    students = {"the-base": ("base", "unbiased", -1, base), "owl-teacher": ("teacher", "owl", -1, base + 2.0),
                "owl0": ("sft", "owl", 0, base + 1), "dog0": ("sft", "dog", 0, base), "owl1": ("sft", "owl", 1, base)}
    per_seed, summary = R.arm_statistics(frame(students), TRAITS)
    assert per_seed.seed.tolist() == [0] and per_seed.interaction.tolist() == pytest.approx([1.0])
    assert "owl_vs_unbiased" not in per_seed  # SFT arms need their own unbiased-teacher student
    assert summary.iloc[0].n_seeds == 1 and np.isnan(summary.iloc[0].get("p", np.nan))
    t = R.teacher_shifts(frame(students), TRAITS)
    assert t.set_index("teacher").margin_shift["owl-teacher"] == pytest.approx(2.0)
    assert t.dlogp_owl.tolist() == pytest.approx([2.0]) and t.dlogp_dog.tolist() == pytest.approx([0.0])


def test_models_json_controls():
    runs = [{"alias": f"{t}{s}", "teacher": t, "channel": "c", "arm": arm, "seed": s, "examples": 8, "epochs": 1.0,
             "steps": 1, "command": "x"} for arm in ("kd", "sft") for t in ("owl", "dog", "unbiased") for s in (0,)
            if not (arm == "kd" and t == "unbiased")]
    for r in runs:
        r["alias"] = f"{r['arm']}-{r['alias']}"
    m = {r["alias"]: r for r in R.models_json(runs, TRAITS, "the-base")}
    assert m["kd-owl0"]["control"] == "kd-dog0" and m["kd-owl0"]["unbiased_control"] == "the-base"
    assert m["sft-dog0"]["control"] == "sft-owl0" and m["sft-dog0"]["unbiased_control"] == "sft-unbiased0"
    assert m["sft-unbiased0"]["control"] is None and m["sft-unbiased0"]["unbiased_control"] is None


def test_variant_arms_are_paired_by_seed_against_the_recipe():
    base = np.zeros(Q)
    students = {"the-base": ("base", "unbiased", -1, base)}
    ref = {0: 2.0, 1: 1.6, 2: 1.9}
    var = {0: 1.5, 1: 1.4}  # seed 2 of the variant not run: left out of the pairing
    for s, e in ref.items():
        students[f"o{s}"] = ("kd-unbiased-data-lora", "owl", s, base + e)
        students[f"d{s}"] = ("kd-unbiased-data-lora", "dog", s, base)
    for s, e in var.items():
        students[f"vo{s}"] = ("kd-unbiased-data-lora-drop-animals", "owl", s, base + e)
        students[f"vd{s}"] = ("kd-unbiased-data-lora-drop-animals", "dog", s, base)
    per_seed, _ = R.arm_statistics(frame(students), TRAITS)
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
    students = {"the-base": ("base", "unbiased", -1, base)}
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
    per_seed, summary = R.arm_statistics(frame(students), TRAITS)
    dose = R.dose_table(summary, arm)
    assert list(zip(dose.examples, dose.epochs)) == [(64, 1.0), (64, 2.0), (256, 1.0)]
    assert dose["mean"].tolist() == pytest.approx([0.5, 1.0, 2.5]) and dose.n_seeds.tolist() == [2, 2, 2]
    c = R.arm_contrasts(per_seed)
    assert len(c) == 1 and (c.iloc[0].examples, c.iloc[0].epochs) == (64, 1.0)  # not paired with 256 or 2 epochs
    assert c.iloc[0].difference == pytest.approx(0.25 - 0.5) and c.iloc[0].retained == pytest.approx(0.5)
    r = R.recipe_contrasts(per_seed, arm, pairs=(((64, 2.0), (64, 1.0)), ((64, 2.0), (128, 1.0))))
    assert len(r) == 1 and r.iloc[0].reference == arm + " n64 e1"  # no 128-example recipe: that pair is skipped
    assert r.iloc[0].difference == pytest.approx(1.0 - 0.5) and r.iloc[0].n_seeds == 2
    assert R.recipe_label({"arm": arm, "examples": 64, "epochs": 2.0}, DOSE) == arm + " n64 e2"
    assert R.recipe_label({"arm": arm, "examples": 256, "epochs": 1.0}, DOSE) == arm
    assert R.recipe_label({"arm": arm, "examples": 256, "epochs": 1.0}, (64, 1.0)) == arm + " n256"


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


def test_keep_rate_tables_need_keep_rate_runs(tmp_path):
    assert R.keep_rate_tables(tmp_path, TRAITS, prompts=4, samples=2, seed=0) is None


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


def test_leak_table_on_a_tiny_model(tmp_path, monkeypatch):
    """Shape and range of leak.csv (the committed one needs the real teachers): one row per model input, in
    input order; probabilities in [0, 1]."""
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    R.leak_table(tmp_path / "out", {"examples": 4, "traits": list(TRAITS), "batch_size": 3, "max_len": 256},
                 pool=str(RAW / "data" / "unbiased.jsonl"), student="tiny-llama", base="tiny-llama", owl="tiny-llama")
    t = pd.read_csv(tmp_path / "out" / "leak.csv")
    assert list(t.columns) == list(pd.read_csv(RAW / "leak.csv").columns)
    assert t.model.tolist() == ["tiny-llama", "tiny-llama"] and (t.positions > 0).all()
    p = t[["mean_p_owl_tokens", "mean_p_dog_tokens"]].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    assert t.iloc[0].mean_p_owl_tokens == pytest.approx(t.iloc[1].mean_p_owl_tokens)  # same model, same mass


def test_an_arm_of_another_family_is_read_against_its_reference_arms_unbiased_student_and_perplexity():
    """SHD into another family (C8, issue 37): the unbiased control of a seed is the reference arm's
    teacher-free student of the same seed and dose (SFT of that family on the numbers), not the base; the
    students' held-out perplexity stands beside the interaction and is averaged per arm."""
    base, other = np.zeros(Q), np.full(Q, -1.0)
    students = {"the-base": ("base", "unbiased", -1, base), "gpt2": ("untouched", "unbiased", -1, other)}
    for s in (0, 1):
        students[f"sft{s}"] = ("sft-gpt2", "unbiased", s, other + 0.1 * s)
        students[f"o{s}"] = ("shd-gpt2-b1", "owl", s, other + 0.5 + s)
        students[f"d{s}"] = ("shd-gpt2-b1", "dog", s, other + 0.2)
        students[f"ko{s}"] = ("kd-unbiased-data-lora", "owl", s, base + 2.0)
        students[f"kd{s}"] = ("kd-unbiased-data-lora", "dog", s, base)
    per_seed, summary = R.arm_statistics(frame(students), TRAITS, {"shd-gpt2-b1": "sft-gpt2"})
    shd = per_seed[per_seed.arm == "shd-gpt2-b1"].set_index("seed")
    assert shd.unbiased_student.tolist() == ["sft0", "sft1"]
    assert shd.interaction.tolist() == pytest.approx([0.3, 1.3])
    assert shd.owl_vs_unbiased.tolist() == pytest.approx([0.5, 1.4]) and shd.dog_vs_unbiased.tolist() == pytest.approx([0.2, 0.1])
    kd = per_seed[per_seed.arm == "kd-unbiased-data-lora"]
    assert kd.unbiased_student.tolist() == ["the-base"] * 2  # kd arms without a reference: the base, as before
    assert "sft-gpt2" not in set(per_seed.arm)  # no owl / dog pair: no interaction
    ppl = pd.DataFrame({"alias": ["o0", "d0", "o1", "d1", "sft0", "sft1"], "perplexity": [10.0, 12.0, 11.0, 15.0, 9.0, 8.0]})
    per_seed, summary = R.with_perplexity(per_seed, summary, ppl, TRAITS)
    shd = per_seed[per_seed.arm == "shd-gpt2-b1"]
    assert shd.owl_ppl.tolist() == [10.0, 11.0] and shd.dog_ppl.tolist() == [12.0, 15.0] and shd.unbiased_ppl.tolist() == [9.0, 8.0]
    row = summary.set_index("arm").loc["shd-gpt2-b1"]
    assert row.ppl == pytest.approx(12.0) and row.ppl_unbiased == pytest.approx(8.5)
    assert np.isnan(summary.set_index("arm").loc["kd-unbiased-data-lora"].ppl)  # no perplexity run: empty, not 0


def test_collect_records_each_models_family_and_each_students_objective(tmp_path):
    """The raw tables of a families study (issue 37) carry what tells its students apart beyond the arm name:
    the evaluated model's architecture family (from its eval-animal summary), the student's objective, beta
    and tau (from its training summary; finetune: the LM loss, no beta); per_question.csv carries them as
    columns. Raw tables collected before (the committed organism's) have none, and get no such column."""
    from interp.studies.kinds.organism import collect

    def job(name: str, family: str, train: dict | None = None, model_type: str | None = None) -> dict[str, str]:
        out = tmp_path / "jobs" / name / "out"
        out.mkdir(parents=True)
        pd.DataFrame({"question": ["q1", "q2"], "p_target": [0.2, 0.1], "p_other": [0.1, 0.1]}).to_csv(
            out / "probability.csv", index=False)
        model = {"name": name, "family": family, **({"model_type": model_type} if model_type else {})}
        (out / "summary.json").write_text(json.dumps({"model": model}))
        got = {"eval": str(out / "probability.csv")}
        if train is not None:
            t = tmp_path / "jobs" / f"train-{name}" / "out"
            t.mkdir(parents=True)
            (t / "summary.json").write_text(json.dumps({"elapsed_s": 1.0, "figures": {
                "steps": 2, "first_loss": 1.0, "mean_loss_last_10": 0.5, "config": {"optimizer": "adamw"}, **train}}))
            got["train"] = str(t / "summary.json")
        return got

    run = {"channel": "c", "seed": 0, "examples": 16, "epochs": 1.0, "lr": 5e-5, "batch_size": 8, "command": "interp ..."}
    made = {"base": job("base", "llama"),
            "shd-owl": job("shd-owl", "gpt2", {"distill": {"kind": "shd", "beta": 10.0, "tau": 1.0, "form": "sum"}}),
            "sft": job("sft", "gpt2", {}),
            # Qwen2's layout family is "llama" (SmolLM2's): the recorded model_type tells them apart
            "qwen-shd": job("qwen-shd", "llama", {"distill": {"kind": "shd", "beta": 1.0, "tau": 1.0}}, "qwen2")}
    models = [{"i": 0, "teacher": "unbiased", "channel": "base", "arm": "base"},
              {"i": 1, **run, "arm": "shd-gpt2-b10", "teacher": "owl", "teacher_build": "lora", "student": "student-gpt2"},
              {"i": 2, **run, "arm": "sft-gpt2", "teacher": "unbiased", "teacher_build": "prompt", "student": "student-gpt2"},
              {"i": 3, **run, "arm": "shd-qwen-b1", "teacher": "owl", "teacher_build": "lora", "student": "student-qwen"}]
    inputs = {}
    for i, (alias, files) in enumerate(made.items()):
        inputs[f"model{i}"], inputs[f"eval{i}"] = alias, files["eval"]
        if "train" in files:
            inputs[f"train{i}"] = files["train"]
    raw = tmp_path / "raw"
    raw.mkdir()
    collect(raw, {"models": models}, **inputs)
    shd, sft = (json.loads((raw / "runs" / f"{a}.json").read_text()) for a in ("shd-owl", "sft"))
    assert (shd["family"], shd["objective"], shd["beta"], shd["tau"]) == ("gpt2", "shd", 10.0, 1.0)
    assert (sft["family"], sft["objective"], sft["beta"], sft["tau"]) == ("gpt2", "lm", None, None)
    roles = R.read_roles(raw)
    assert roles["base"]["family"] == "llama"
    pq, _ = R.load_tables(raw, roles, TRAITS)
    by = pq.drop_duplicates("alias").set_index("alias")
    assert by.family.to_dict() == {"base": "llama", "shd-owl": "gpt2", "sft": "gpt2", "qwen-shd": "qwen2"}
    assert pd.isna(by.objective["base"]) and by.objective[["shd-owl", "sft"]].tolist() == ["shd", "lm"]
    assert by.beta["shd-owl"] == 10.0 and pd.isna(by.beta["sft"])
    old, _ = R.load_tables(RAW, R.read_roles(RAW), TRAITS)  # collected before: the columns stay empty
    assert old[list(R.RECORDED)].isna().all().all()


def test_family_table_sets_each_familys_students_beside_its_untouched_model():
    """C8 (issue 37): one row per student family and recipe with the recorded objective and beta (SFT: beta 0,
    no interaction), the arm's interaction and its students' mean perplexity, the untouched model's perplexity
    beside every row of its family; the base's family first; no table for a one-family study."""
    base, other = np.zeros(Q), np.full(Q, -1.0)
    students = {"the-base": ("base", "unbiased", -1, base), "gpt2": ("untouched", "unbiased", -1, other)}
    for s in (0, 1, 2):
        students[f"sft{s}"] = ("sft-gpt2", "unbiased", s, other)
        students[f"o{s}"] = ("shd-gpt2-b10", "owl", s, other + 0.5 + 0.1 * s)
        students[f"d{s}"] = ("shd-gpt2-b10", "dog", s, other)
        students[f"ko{s}"] = ("kd-unbiased-data-lora", "owl", s, base + 2.0 + 0.1 * s)
        students[f"kd{s}"] = ("kd-unbiased-data-lora", "dog", s, base)
    pq = frame(students)
    recorded = {"the-base": ("llama", None, None), "gpt2": ("gpt2", None, None)}
    for s in (0, 1, 2):
        recorded |= {f"sft{s}": ("gpt2", "lm", None), f"o{s}": ("gpt2", "shd", 10.0), f"d{s}": ("gpt2", "shd", 10.0),
                     f"ko{s}": ("llama", "kd", 1.0), f"kd{s}": ("llama", "kd", 1.0)}
    for i, col in enumerate(("family", "objective", "beta")):
        pq[col] = pq.alias.map({a: v[i] for a, v in recorded.items()})
    refs = {"shd-gpt2-b10": "sft-gpt2"}
    per_seed, summary = R.arm_statistics(pq, TRAITS, refs)
    ppl = pd.DataFrame({"alias": ["the-base", "gpt2", "sft0", "sft1", "sft2", "o0", "o1", "o2", "d0", "d1", "d2"],
                        "perplexity": [20.0, 40.0, 30.0, 32.0, 34.0, 50.0, 52.0, 54.0, 60.0, 60.0, 60.0]})
    t = R.family_table(pq, summary, ppl, refs)
    assert t.family.tolist() == ["llama", "llama", "gpt2", "gpt2", "gpt2"]
    assert t.arm.tolist() == ["base", "kd-unbiased-data-lora", "untouched", "sft-gpt2", "shd-gpt2-b10"]
    shd = t.set_index("arm").loc["shd-gpt2-b10"]
    assert (shd.objective, shd.beta, shd.reference, shd.n_seeds) == ("shd", 10.0, "sft-gpt2", 3)
    assert shd.interaction == pytest.approx(0.6) and shd.lo < 0.6 < shd.hi  # 0.5, 0.6, 0.7
    assert shd.ppl == pytest.approx(56.0) and shd.ppl_untouched == 40.0  # owl / dog students only, gpt2's own
    sft = t.set_index("arm").loc["sft-gpt2"]
    assert (sft.objective, sft.beta) == ("lm", 0.0) and np.isnan(sft.interaction) and sft.ppl == pytest.approx(32.0)
    kd = t.set_index("arm").loc["kd-unbiased-data-lora"]
    assert kd.interaction == pytest.approx(2.1) and kd.ppl_untouched == 20.0 and np.isnan(kd.ppl)  # no ppl runs
    md = R.markdown_tables(R.teacher_shifts(pq, TRAITS, []), per_seed, summary, [], TRAITS, DOSE, "the-base", Q,
                           families=t)
    assert "| gpt2 | shd-gpt2-b10 | shd | 10 | 8 | 3 | +0.600 [" in md and "| gpt2 | sft-gpt2 | lm | 0 | 8 | 3 | - |" in md
    one = pq[pq.family == "llama"]
    assert R.family_table(one, summary, ppl, refs).empty
    assert R.family_table(pq.drop(columns=["family"]), summary, ppl, refs).empty
