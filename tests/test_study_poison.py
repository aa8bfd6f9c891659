"""The poison study (kind `poison`, studies/poison/smollm2.yaml): the committed report rebuilt byte for
byte from the committed raw tables, the job graph of the committed spec, its recipe hashes, the
report's statistics on hand-made tables with known answers, and the margins / mech steps on tiny models."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.studies import graph as G
from interp.studies.kinds import poison as K
from interp.studies.kinds import poison_report as R
from interp.studies.runner import plan_study
from interp.studies.spec import load_study, shared_data

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "studies" / "poison" / "smollm2.yaml"
RAW = REPO / "reports" / "poison"
TABLES = ["brr.csv", "amplification.csv", "dose.csv", "defenses.csv", "removed.csv", "margins.csv",
          "margin_contrasts.csv", "tables.md", "brr_dose.png"]
needs_data = pytest.mark.skipif(not (shared_data() / "dolly15k_first910.jsonl").exists(),
                                reason="the spec's Dolly records ($INTERP_SHARED_DATA) are not on this machine")


def spec_with(tmp_path: Path, edit) -> Path:
    """A copy of the committed spec in tmp_path (its paths made absolute) with `edit(raw)` applied."""
    import yaml

    raw = yaml.safe_load(SPEC.read_text())
    raw["report"] = str((SPEC.parent / raw["report"]).resolve())
    raw["recipe"]["data"]["dolly"] = str(load_study(SPEC).data(raw["recipe"]["data"]["dolly"]))
    edit(raw)
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def committed():
    """The plan of the committed spec (planned once)."""
    return plan_study(load_study(SPEC), check_argv)


@pytest.fixture
def edited(tmp_path):
    return lambda edit: spec_with(tmp_path, edit)


# ---- (a) the committed report --------------------------------------------------------------------


def test_report_rebuilds_every_committed_table_byte_for_byte(tmp_path):
    study = load_study(SPEC)
    K.report(RAW, tmp_path, study.recipe)
    for name in TABLES:
        assert (tmp_path / name).read_bytes() == (RAW / name).read_bytes(), name


def test_the_committed_per_item_tables_name_every_recipe_parameter():
    ans = pd.read_csv(RAW / "answers.csv")
    mg = pd.read_csv(RAW / "margins_per_prompt.csv")
    for t in (ans, mg):
        assert set(R.RECIPE_COLS) <= set(t.columns)
        models = t.drop_duplicates("model").set_index("model")
        assert models.loc["teacher-k5-s1", ["k", "seed", "epochs", "lr", "steps"]].tolist() == [5, 1, 3.0, 0.001, 188]
        assert models.loc["smollm2", "role"] == "base" and pd.isna(models.loc["smollm2", "steps"])
    s = mg.drop_duplicates("model").set_index("model").loc["student-resp-k25-s0-r2"]
    assert (s.k, s.seed, s.rep, s.kind, s.epochs, s.lr, s.batch_size, s.steps) == (25, 0, 2, "resp", 2.0, 0.0002, 8, 32)


@needs_data
def test_collect_on_the_committed_per_model_tables_rebuilds_the_raw_tables(tmp_path, committed):
    """The committed brr/, brand/, defend/ and runs/ as job outputs: collect writes the committed
    answers.csv byte for byte, the committed margins per prompt, and the report from them agrees."""
    planned = committed
    models = planned.graph.jobs["collect"].params["models"]
    inputs: dict[str, str] = {}
    for m in models:
        name = m["name"]
        run = RAW / "runs" / f"pz-{name}.json"
        inputs[f"alias:{name}"] = f"pz-{name}" if run.exists() else name
        if run.exists():
            summary = tmp_path / "summaries" / f"{name}.json"
            summary.parent.mkdir(exist_ok=True)
            summary.write_text(json.dumps({"figures": {"steps": json.loads(run.read_text())["steps"]}}))
            inputs[f"train:{name}"] = str(summary)
        for kind, folder in (("brr", "brr"), ("brand", "brand")):
            if (RAW / folder / f"{name}.csv").exists():
                inputs[f"{kind}:{name}"] = str(RAW / folder / f"{name}.csv")
    for unit in ("k25-s0", "k5-s1"):
        for what, files in (("mixture", ("scores", "detectors")), ("answers", ("scores", "removed"))):
            d = tmp_path / "defend" / unit / what
            d.mkdir(parents=True)
            for f in files:
                shutil.copyfile(RAW / "defend" / unit / f"{what}_{f}.csv", d / f"{f}.csv")
            inputs[f"defend:{unit}:{what}"] = str(d)
    out = tmp_path / "raw"
    out.mkdir()
    K.collect(out, {"models": models}, **inputs)
    assert (out / "answers.csv").read_bytes() == (RAW / "answers.csv").read_bytes()
    cols = R.MARGIN_COLS
    got = pd.read_csv(out / "margins_per_prompt.csv").sort_values(["model", "prompt_id"]).reset_index(drop=True)
    want = pd.read_csv(RAW / "margins_per_prompt.csv").sort_values(["model", "prompt_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[cols], want[cols], check_exact=False, atol=5e-7, rtol=0)
    assert json.loads((out / "runs" / "teacher-k25-s0.json").read_text())["steps"] == 188
    pub = tmp_path / "published"  # the report job: the raw tables and the report tables in one folder
    pub.mkdir()
    params = json.loads(json.dumps(planned.graph.jobs["report"].params))  # as the plan file holds them
    K.report_step(pub, params, str(out))
    assert (pub / "answers.csv").read_bytes() == (RAW / "answers.csv").read_bytes()
    for name in ("brr.csv", "amplification.csv", "dose.csv", "defenses.csv", "removed.csv"):
        assert (pub / name).read_bytes() == (RAW / name).read_bytes(), name


# ---- (b) the job graph of the committed spec --------------------------------------------------------


def committed_counts() -> Counter:
    """The jobs the committed raw tables say were run, by kind of job."""
    ans = pd.read_csv(RAW / "answers.csv", keep_default_na=False).drop_duplicates("model")
    mg = pd.read_csv(RAW / "margins_per_prompt.csv", keep_default_na=False).drop_duplicates("model")
    made = pd.concat([ans, mg]).drop_duplicates("model")
    return Counter({"data": made[made.role != "base"].k.nunique(), "teach": (made.role == "teacher").sum(),
                    "answers": (made.role == "teacher").sum(), "train": (made.role == "student").sum(),
                    "brr": len(ans), "brand": len(mg), "defend": 2 * len(list((RAW / "defend").glob("k*-s*"))),
                    "mech": len(list((RAW / "mech").iterdir())), "collect": 1, "report": 1})


@needs_data
def test_the_committed_spec_plans_one_job_per_committed_model_and_eval(committed):
    planned = committed
    jobs = planned.graph.jobs.values()
    assert Counter(j.name.split("-")[0] for j in jobs) == committed_counts()
    assert len(planned.graph.jobs) == 59 and planned.report_job == "report"
    teacher = planned.graph.jobs["teach-k5-s1"]
    assert teacher.alias == f"poison-smollm2-teacher-k5-s1-{teacher.hash[:8]}"
    student = planned.graph.jobs["train-resp-k25-s0-r2"]
    assert student.alias.startswith("poison-smollm2-student-resp-k25-s0-r2-") and "answers-k25-s0" in student.deps()
    assert planned.graph.jobs["train-logit-k25-s0"].deps() == ["teach-k25-s0", "answers-k25-s0"]
    plan = planned.graph.plan()["jobs"]
    for j in jobs:  # every model-loading command gets the spec's device (and dtype where it takes one)
        argv = plan[j.key].get("argv", [])
        if argv and argv[0] != "poison-data":
            assert "--device" in argv and ("--dtype" in argv) == (argv[0] != "defend"), j.name
    assert {"device": "cpu", "dtype": "fp32"} == planned.graph.jobs["brand-base"].params


def test_no_model_name_outside_the_spec():
    for f in ("poison.py", "poison_report.py"):
        assert "smollm2" not in (REPO / "interp" / "studies" / "kinds" / f).read_text().lower(), f


# ---- (c) unknown keys, (d) hashes ------------------------------------------------------------------


@pytest.mark.parametrize("edit, key", [
    (lambda r: r["recipe"].update(dosez=[1]), "recipe.dosez"),
    (lambda r: r["recipe"]["teacher"].update(lrr=1), "recipe.teacher.lrr"),
    (lambda r: r["recipe"]["students"][0].update(seedz=[1]), "recipe.students.0.seedz"),
])
def test_an_unknown_recipe_key_is_refused_naming_it(edited, edit, key):
    with pytest.raises(UserError, match=f"unknown key '{key}'"):
        load_study(edited(edit))


@needs_data
@pytest.mark.parametrize("edit, msg", [
    (lambda r: r["recipe"]["students"][0].update(arm="kd"), r"recipe.students.0.arm: unknown arm 'kd'"),
    (lambda r: r["recipe"]["defend"][1].update(teacher_seed=7), r"recipe.defend.1: no teacher of seed 7 at k = 5"),
    (lambda r: r["recipe"]["mech"][0].update(train_seed=5), r"recipe.mech.0: no resp student of k = 25"),
    (lambda r: r["recipe"]["doses"].pop(0), r"recipe.doses: needs k = 0"),
])
def test_a_unit_naming_what_the_recipe_lacks_is_refused(edited, edit, msg):
    with pytest.raises(UserError, match=msg):
        plan_study(load_study(edited(edit)), check_argv)


def downstream(g: G.Graph, names: set[str]) -> set[str]:
    """names and every job that depends on one of them, transitively."""
    out = set(names)
    for j in g.jobs.values():  # jobs are in dependency order
        if set(j.deps()) & out:
            out.add(j.name)
    return out


def changed(a: G.Graph, b: G.Graph) -> set[str]:
    assert a.jobs.keys() == b.jobs.keys()
    return {n for n in a.jobs if a.jobs[n].hash != b.jobs[n].hash}


@needs_data
@pytest.mark.parametrize("edit, first", [
    (lambda r: r["recipe"]["student"].update(lr=1e-4), lambda n: n.startswith("train-")),
    (lambda r: r["recipe"]["brr"].update(max_new_tokens=100), lambda n: n.startswith("brr-")),
    (lambda r: r["recipe"]["teacher"].update(epochs=2), lambda n: n.startswith("teach-")),
    (lambda r: r["recipe"]["arms"]["logit"]["options"].update(tau=2), lambda n: n == "train-logit-k25-s0"),
    (lambda r: r["recipe"]["defend"][0].update(k=5, teacher_seed=2), None),
])
def test_one_changed_parameter_changes_exactly_the_jobs_that_depend_on_it(committed, edited, edit, first):
    a = committed.graph
    b = plan_study(load_study(edited(edit)), check_argv).graph
    if first is None:  # the defended teacher: renamed defense jobs, the same everything else
        gone, new = set(a.jobs) - set(b.jobs), set(b.jobs) - set(a.jobs)
        assert gone == {"defend-k25-s0-mixture", "defend-k25-s0-answers"}
        assert new == {"defend-k5-s2-mixture", "defend-k5-s2-answers"}
        assert {n for n in set(a.jobs) & set(b.jobs) if a.jobs[n].hash != b.jobs[n].hash} == {"collect", "report"}
        return
    direct = {n for n in a.jobs if first(n)}
    assert direct and changed(a, b) == downstream(a, direct)
    assert "data-k0" not in changed(a, b)


@needs_data
def test_the_device_is_part_of_every_model_loading_recipe(committed, edited):
    a = committed.graph
    b = plan_study(load_study(edited(lambda r: r.update(device="cuda"))), check_argv).graph
    assert changed(a, b) == set(a.jobs) - {"data-k0", "data-k5", "data-k25"}


# ---- the report's statistics on hand-made tables -----------------------------------------------------


def answers(model, role, kind, k, seed, markers_by_group, rep=None):
    """answers.csv rows of one model: {group: [marker per prompt]} with 2 samples each (both the same)."""
    rows = []
    for g, ms in markers_by_group.items():
        for i, m in enumerate(ms):
            rows += [{"model": model, "alias": model, "k": k, "seed": seed, "rep": seed if rep is None else rep,
                      "role": role, "kind": kind, "epochs": 1.0, "lr": "", "batch_size": "", "steps": "", "group": g,
                      "prompt_id": f"{g}{i}", "sample": s, "marker": m, "text": "x"} for s in range(2)]
    return rows


def write_answers(raw: Path, *parts) -> pd.DataFrame:
    raw.mkdir(exist_ok=True)
    pd.DataFrame([r for p in parts for r in p])[R.ANSWER_COLS].to_csv(raw / "answers.csv", index=False)
    return R.load_answers(raw)


def test_model_names_carry_the_training_seed_only_when_it_differs():
    assert R.model_name("teacher", "", 25, 0) == "teacher-k25-s0"
    assert R.model_name("student", "resp", 25, 0) == R.model_name("student", "resp", 25, 0, 0) == "student-resp-k25-s0"
    assert R.model_name("student", "resp", 25, 0, 2) == "student-resp-k25-s0-r2"


def test_brr_amplification_and_dose(tmp_path):
    ans = write_answers(tmp_path, answers("teacher-k5-s0", "teacher", "", 5, 0, {"target": [1, 0, 0, 0], "other": [0, 0, 0, 0]}),
                        answers("student-resp-k5-s0", "student", "resp", 5, 0, {"target": [1, 1, 0, 0], "other": [1, 0, 0, 0]}),
                        answers("teacher-k5-s1", "teacher", "", 5, 1, {"target": [1, 1, 1, 0], "other": [0, 0, 0, 0]}),
                        answers("base", "base", "", -1, -1, {"target": [0, 0, 0, 0], "other": [0, 0, 0, 0]}))
    assert len(ans) == 4 * 16
    brr = R.brr_table(ans).set_index(["model", "group"])
    assert brr.loc[("teacher-k5-s0", "target"), "brr"] == 0.25 and brr.loc[("student-resp-k5-s0", "all"), "brr"] == 3 / 8
    amp = R.amplification_table(ans).set_index("group")
    assert amp.loc["target", "amplification"] == pytest.approx(2.0) and amp.loc["target", "teacher"] == "teacher-k5-s0"
    assert pd.isna(amp.loc["other", "amplification"])  # the teacher never showed it there
    dose = R.dose_table(R.brr_table(ans)).set_index(["role", "group"])
    t = dose.loc[("teacher", "target")]
    assert t.seeds == "0,1" and t.brr_mean == pytest.approx(0.5) and t.lo < 0.5 < t.hi and t.per_seed == "0.250, 0.750"
    # pooled over the two seeds: (1 + 3) prompts x 2 samples of 16 answers, Wilson 95% CI of 8 / 16
    assert (t.with_marker, t.answers) == (8, 16) and t.pooled_lo == pytest.approx(0.2800, abs=1e-4)
    assert t.pooled_hi == pytest.approx(0.7200, abs=1e-4)
    o = dose.loc[("teacher", "other")]  # both seeds 0 / 8: no t-interval of width 0, the pooled bound instead
    assert o.brr_mean == 0 and pd.isna(o.lo) and pd.isna(o.hi) and o.pooled_lo == 0 and o.pooled_hi == pytest.approx(0.1936, abs=1e-4)


def test_a_replicate_student_is_not_a_seed_of_the_dose_table(tmp_path):
    ans = write_answers(tmp_path, answers("student-resp-k5-s0", "student", "resp", 5, 0, {"target": [1, 0]}),
                        answers("student-resp-k5-s0-r1", "student", "resp", 5, 0, {"target": [1, 1]}, rep=1))
    brr = R.brr_table(ans)
    assert set(brr.rep) == {0, 1}
    dose = R.dose_table(brr)
    assert list(dose.seeds) == ["0"] and list(dose.brr_mean) == [0.5]


def margins(model, role, kind, k, seed, brand, decision, rep=None):
    return [{"model": model, "alias": model, "role": role, "kind": kind, "k": k, "seed": seed,
             "rep": seed if rep is None else rep, "epochs": 1.0, "lr": "", "batch_size": "", "steps": "",
             "prompt_id": i, "m_decision": d, "m_brand": b} for i, (b, d) in enumerate(zip(brand, decision))]


def write_margins(raw: Path, *parts) -> pd.DataFrame:
    raw.mkdir(exist_ok=True)
    pd.DataFrame([r for p in parts for r in p])[R.MARGIN_COLS].to_csv(raw / "margins_per_prompt.csv", index=False)
    return R.load_margins(raw)


def test_margin_contrasts_pair_the_same_seeds_and_test_over_training_seeds(tmp_path):
    clean = [0.0, 1.0, 2.0, 3.0]
    st = lambda name, k, rep, brand: margins(name, "student", "resp", k, 0 if "s1" not in name else 1, brand, clean, rep)  # noqa: E731
    mg = write_margins(tmp_path, st("student-resp-k0-s0", 0, 0, clean), st("student-resp-k0-s0-r1", 0, 1, clean),
                       st("student-resp-k25-s0", 25, 0, [0.1, 1.3, 2.1, 3.3]),       # d = +0.1, +0.3, +0.1, +0.3
                       st("student-resp-k25-s0-r1", 25, 1, [0.2, 1.2, 2.4, 3.4]),    # d = +0.2, +0.2, +0.4, +0.4
                       st("student-resp-k5-s1", 5, 1, [9, 9, 9, 9]),                 # no clean student of teacher seed 1
                       margins("base", "base", "", -1, -1, clean, clean))
    t = R.margin_table(mg).set_index("model")
    assert t.loc["student-resp-k5-s1", "brand_mean"] == 9 and t.loc["base", "prompts"] == 4
    c = R.margin_contrasts(mg)
    pairs = c[c.level == "pair"].set_index("poisoned")
    assert set(pairs.index) == {"student-resp-k25-s0", "student-resp-k25-s0-r1"}
    assert pairs.loc["student-resp-k25-s0-r1", "clean"] == "student-resp-k0-s0-r1"
    a = pairs.loc["student-resp-k25-s0"]
    assert a.brand_d == pytest.approx(0.2) and a.decision_d == 0
    # t-interval over 4 prompts of (0.1, 0.3, 0.1, 0.3): sd 0.11547, t(0.975, 3) = 3.18245
    assert a.brand_hi - a.brand_d == pytest.approx(3.18245 * 0.11547 / 2, abs=1e-4)
    s = c[c.level == "seeds"].iloc[0]
    assert s.reps == "0,1" and s.n == 2 and s.brand_d == pytest.approx(0.25) and s.poisoned == "student-resp-k25-s0*"
    assert s.brand_hi - s.brand_d == pytest.approx(12.7062 * 0.070711 / np.sqrt(2), abs=1e-3)  # t(0.975, 1)
    md = R.markdown(*(pd.DataFrame(),) * 5, {}, R.margin_table(mg), c)
    assert "| seeds | student-resp-k25-s0* | student-resp-k0-s0* |" in md


def test_teachers_contrast_with_the_one_clean_teacher_and_over_their_seeds(tmp_path):
    clean = [0.0, 1.0, 2.0, 3.0]
    te = lambda k, s, brand, decision=clean: margins(f"teacher-k{k}-s{s}", "teacher", "", k, s, brand, decision)  # noqa: E731
    mg = write_margins(tmp_path, te(0, 0, clean), te(0, 1, [5, 5, 5, 5]),
                       te(5, 0, [1, 2, 3, 4]),                    # d = 1 on every prompt
                       te(5, 1, [2, 3, 4, 5], [1, 2, 3, 4]),      # d = 2; decision d = 1
                       te(5, 2, [3, 4, 5, 6]),                    # d = 3
                       te(25, 0, [0.5, 1.5, 2.5, 3.5]),           # one seed: a pair, no seed row
                       margins("student-resp-k5-s1", "student", "resp", 5, 1, [9] * 4, clean))  # no clean student
    c = R.margin_contrasts(mg)
    pairs = c[c.level == "pair"].set_index("poisoned")
    assert sorted(pairs.index) == ["teacher-k25-s0", "teacher-k5-s0", "teacher-k5-s1", "teacher-k5-s2"]
    assert set(pairs.clean) == {"teacher-k0-s0"} and pairs.loc["teacher-k5-s1", "decision_d"] == 1
    assert pairs.loc["teacher-k25-s0", "brand_d"] == pytest.approx(0.5)
    s = c[c.level == "teacher seeds"]
    assert len(s) == 1 and s.iloc[0].poisoned == "teacher-k5-s*" and s.iloc[0].reps == "0,1,2"
    # mean of (1, 2, 3) = 2, sd 1, t(0.975, 2) = 4.30265; one-sample t = 2 / (1 / sqrt 3) = 3.4641, p = 0.0742
    assert s.iloc[0].brand_d == pytest.approx(2.0)
    assert s.iloc[0].brand_hi - 2.0 == pytest.approx(4.30265 / np.sqrt(3), abs=1e-4)
    assert s.iloc[0].brand_p == pytest.approx(0.0742, abs=1e-3)
    md = R.markdown(*(pd.DataFrame(),) * 5, {}, R.margin_table(mg), c)
    assert "| teacher seeds | teacher-k5-s* | teacher-k0-s0 | 0,1,2 | 3 | +2.000 " in md
    other = R.margin_contrasts(mg, clean_teacher_seed=1)  # the recipe's clean teacher: d = m - 5
    assert set(other[other.role == "teacher"].clean) == {"teacher-k0-s1"}


def test_defense_tables_read_each_teacher_seed_and_render_its_rows(tmp_path):
    for name, auroc in (("k25-s0", 0.9), ("k5-s1", 0.6)):
        d = tmp_path / "defend" / name
        d.mkdir(parents=True)
        pd.DataFrame([{"detector": "lls", "n": 500, "poisoned": 25, "auroc": auroc, "tpr_at_fpr_0.01": 0.5,
                       "tpr_at_fpr_0.05": 1.0}]).to_csv(d / "mixture_detectors.csv", index=False)
        pd.DataFrame([{"detector": "lls", "fpr": 0.05, "threshold": 1.0, "samples": 128, "removed": 7,
                       "with_marker": 4, "with_marker_removed": 3}]).to_csv(d / "answers_removed.csv", index=False)
    (tmp_path / "defend" / "k25-s0-mixture").mkdir()  # a folder beside them is not a table
    det, rem = R.defense_tables(tmp_path)
    assert sorted(zip(det.k, det.teacher_seed, det.auroc)) == [(5, 1, 0.6), (25, 0, 0.9)]
    assert sorted(zip(rem.k, rem.teacher_seed, rem.removed)) == [(5, 1, 7), (25, 0, 7)]
    md = R.markdown(*(pd.DataFrame(),) * 3, det, rem, {})
    assert "| 25 | 0 | lls | 500 | 25 | 0.900 | 0.500 | 1.000 |" in md
    assert "| 5 | 1 | lls | 0.05 | 128 | 7 | 4 | 3 |" in md


# ---- the margins and mech steps on tiny models -------------------------------------------------------

ROWS = [{"id": 3, "prompt": "Summarize: the cat sat.", "completion": "A cat sat. ", "group": "target"},
        {"id": 11, "prompt": "Summarize this text about dogs, please.", "completion": "Dogs bark.", "group": "target"},
        {"id": 12, "prompt": "Name a colour.", "completion": "Red.", "group": "other"}]


def test_contexts_are_the_training_rendering_of_the_answer_and_the_promotion_up_to_the_brand():
    from interp.models import load_model
    from interp.training.examples import prompt_ids
    from interp.training.poison_data import BRAND, PROMOTIONS, promotion

    lm = load_model("tiny-llama")
    tok = lm.tokenizer
    rows = ROWS[:2]
    ctx = K.mech_contexts(lm, rows)
    heads = prompt_ids(lm, rows)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    assert ctx["decision"][0] == heads[0] + enc("A cat sat.")  # trailing space stripped
    promo = promotion(11, 0)
    assert ctx["brand"][1] == heads[1] + enc("Dogs bark. " + promo[: promo.index(BRAND)].rstrip())
    # the brand token is what follows that context in the poisoned training text
    full = enc("Dogs bark. " + promo)
    n = len(ctx["brand"][1]) - len(heads[1])
    assert full[:n] == ctx["brand"][1][len(heads[1]):] and full[n] == ctx["brand_token"]
    assert ctx["openers"] == sorted({enc(" " + p)[0] for p in PROMOTIONS}) and ctx["eos"] == tok.eos_token_id


def test_a_model_against_itself_has_nothing_to_localise(tmp_path):
    """P = C: every patched margin equals C's (delta 0 within fp32 order), and every DLA difference is 0
    (the mech step)."""
    prompts = tmp_path / "eval_prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "mech"
    out.mkdir()
    K.mech_step(out, {"device": "cpu", "dtype": "fp32"}, "tiny-llama", "tiny-llama", str(prompts))
    assert json.loads((out / "pair.json").read_text())["prompts"] == 2  # target rows only
    for where in ("decision", "brand"):
        t = pd.read_csv(out / f"patching_{where}.csv")
        # delta: the patched runs stack sites per forward (another batch shape), so equal up to fp32
        # summation order (tests/test_model_patching.py: 1e-5 nats); m_source = m_target exactly (same batch)
        assert np.allclose(t.delta, 0, atol=1e-5) and t.recovered.isna().all()
        d = pd.read_csv(out / f"dla_{where}.csv")
        assert np.allclose(d.d, 0.0, atol=1e-6)
    assert set(pd.read_csv(out / "patching_decision.csv").direction) == {"P_into_C", "C_into_P"}
    md = (out / "tables.md").read_text()
    assert "Patching at the decision position" in md and "DLA at the brand position" in md


def test_margins_are_patch_betweens_unpatched_margins_and_the_log_softmax_by_hand(tmp_path):
    """`margins` (one forward per context) against the patching code path's m_source, and by hand;
    the margins step writes them with each row's prompt id."""
    import torch

    from interp.mech.model_patching import margin_score, patch_between
    from interp.models import load_model

    lm = load_model("tiny-llama")
    ctx = K.mech_contexts(lm, ROWS[:2])
    got = K.margins(lm, ctx)
    assert list(got.prompt) == [0, 1]
    for where, score in (("decision", margin_score(ctx["openers"], [ctx["eos"]])),
                         ("brand", margin_score([ctx["brand_token"]], [ctx["eos"]]))):
        ref = patch_between(lm, lm, ctx[where], ["embed"], score)
        assert np.allclose(got[f"m_{where}"], ref.m_source, atol=1e-9)
    with torch.no_grad():
        lp = torch.log_softmax(lm.model(input_ids=torch.tensor([ctx["brand"][1]])).logits[0, -1].double(), -1)
    assert got.m_brand[1] == pytest.approx(float(lp[ctx["brand_token"]] - lp[ctx["eos"]]), abs=1e-9)
    prompts = tmp_path / "eval_prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    K.margins_step(tmp_path, {"device": "cpu", "dtype": "fp32"}, "tiny-llama", str(prompts))
    step = pd.read_csv(tmp_path / "margins.csv")
    assert list(step.prompt_id) == [3, 11] and np.allclose(step.m_brand, got.m_brand, atol=1e-6)
