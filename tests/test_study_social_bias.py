"""The social-bias study (kind `social_bias`): its statistics on hand-made tables with known answers, the
byte-for-byte rebuild of the committed report from the committed raw tables, and the job graph of the
committed spec (studies/social_bias/smollm2.yaml)."""

import functools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.studies.kinds import social_bias as K
from interp.studies.kinds import social_bias_report as R
from interp.studies.runner import plan_study
from interp.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "studies" / "social_bias" / "smollm2.yaml"
REPORT = ROOT / "reports" / "social_bias"
TABLES = ["teachers.csv", "students.csv", "per_seed_summary.csv", "c1.csv", "retention.csv", "retention_seed_level.csv",
          "teacher_contrast.csv", "teacher_contrast_seed_level.csv", "agreement.csv", "confidence.csv",
          "perplexity.csv", "tables.md", "bias_shift.png", "README.md"]
N = 20
TRAINING = (2e-4, 8, 8, 128, 1.0)


# ---- statistics on hand-made tables -------------------------------------------------------------------


def crows_rows(model, choices, margin=1.0):
    """per-pair rows of CrowS gender items: choice 1 -> ll_more = ll_less + margin, 0 -> ll_less + margin."""
    c = np.asarray(choices)
    return pd.DataFrame({"model": model, "bench": "crows", "item": np.arange(len(c)), "bias_type": "gender",
                         "ll_more": np.where(c == 1, -10 + margin, -10 - margin), "ll_less": -10.0,
                         "n_tokens_more": 5, "n_tokens_less": 5, "ll_unrelated": np.nan, "n_tokens_unrelated": np.nan})


def ones(k):
    return [1] * k + [0] * (N - k)


def run(model, arm, teacher, seed=0, student="smollm2"):
    return {"model": model, "arm": arm, "student": student, "teacher": teacher, "seed": seed, "examples": 8,
            "training": TRAINING}


def runs_for(teacher):
    return [run("s-kd", "kd", teacher), run("s-b0", "beta0-smollm2", None)]


def test_per_pair_rows_read_the_eval_tables(tmp_path):
    pd.DataFrame({"pair_id": [7, 9], "bias_type": "gender", "ll_more": [-3.0, -4.0], "ll_less": [-3.5, -3.0],
                  "n_tokens_more": [4, 5], "n_tokens_less": [4, 6]}).to_csv(tmp_path / "crows_gender_pairs.csv", index=False)
    pd.DataFrame({"item_id": [1, 2], "split": ["intrasentence", "intersentence"], "bias_type": "gender",
                  "ll_stereotype": [-6.0, -8.0], "ll_anti_stereotype": [-4.0, -9.0], "ll_unrelated": [-9.0, -9.0],
                  "n_tokens_stereotype": [3, 4], "n_tokens_anti_stereotype": [1, 4], "n_tokens_unrelated": [3, 3]}
                 ).to_csv(tmp_path / "stereoset_gender_items.csv", index=False)
    pd.DataFrame({"pair_id": [0], "bias_type": "gender-occupation", "ll_more": [-9.0], "ll_less": [-8.0],
                  "n_tokens_more": [9], "n_tokens_less": [2]}).to_csv(tmp_path / "probe_occupation_pairs.csv", index=False)
    pp = R.per_pair_rows("m", tmp_path)
    assert list(pp.columns) == R.PER_PAIR_COLUMNS
    assert list(pp.bench) == ["crows", "crows", "probe-occupation", "stereoset-intra", "stereoset-inter"]
    s = R.item_scores(pp)
    # CrowS and the probe: summed LL (-3 > -3.5: 1; -4 < -3: 0; -9 < -8: 0 although -1 > -4 per token);
    # StereoSet: per-token mean (-6/3 = -2 > -4/1 = -4: 1, although -6 < -4)
    assert list(s.choice) == [1, 0, 0, 1, 1]
    assert s.margin.tolist() == pytest.approx([0.5, -1.0, -1.0, 2.0, -2.0 + 2.25])
    assert list(s.subset) == ["crows-gender", "crows-gender", "probe-occupation", "ss-gender", "ss-gender"]


def test_teacher_shift_counts_flipped_items():
    pp = pd.concat([crows_rows("base", ones(10)), crows_rows("t", ones(16))])
    r = R.teacher_table(R.matrices(pp), {"t": "base"}).iloc[0]
    assert (r.bias_b, r.bias_a, r.delta_bias) == (50.0, 80.0, pytest.approx(30.0))  # 6 of 20 items flipped to 1
    assert r.delta_bias_lo > 0 and r.p_bias < 0.05
    assert r.delta_margin == pytest.approx(6 * 2.0 / N)  # each flipped item's margin moves from -1 to +1


def test_students_against_both_baselines_and_retention():
    # base 100% stereotypical, the debiased teacher 50% (drop 50 points); beta0 90%, the student 60% (drop 30)
    pp = pd.concat([crows_rows("smollm2", ones(20)), crows_rows("deb", ones(10)), crows_rows("s-b0", ones(18)),
                    crows_rows("s-kd", ones(12))])
    mats, runs = R.matrices(pp), runs_for("deb")
    st = R.student_table(mats, runs).set_index("baseline")
    assert st.loc["untouched", "reference"] == "smollm2" and st.loc["untouched", "delta_bias"] == pytest.approx(-40.0)
    assert st.loc["beta0", "reference"] == "s-b0" and st.loc["beta0", "delta_bias"] == pytest.approx(-30.0)
    ret = R.retention(mats, runs, "deb", "smollm2").iloc[0]
    assert ret.teacher_drop == pytest.approx(50.0) and ret.student_drop == pytest.approx(30.0)
    assert ret.retention == pytest.approx(0.6) and ret.retention_lo <= 0.6 <= ret.retention_hi and ret.defined
    c1 = R.c1_table(mats, runs, {"deb": "smollm2"}).iloc[0]
    assert c1.student_minus_teacher == pytest.approx(10.0) and c1.student_shift == pytest.approx(-30.0)
    assert c1.teacher_shift == pytest.approx(-50.0)


def test_baseline_2_is_trained_the_same_way():
    # a beta = 0 student of another lr is not the kd student's baseline 2
    pp = pd.concat([crows_rows("smollm2", ones(20)), crows_rows("deb", ones(10)), crows_rows("s-b0", ones(18)),
                    crows_rows("s-kd", ones(12))])
    runs = [run("s-kd", "kd", "deb"), {**run("s-b0", "beta0-smollm2", None), "training": (1e-4, *TRAINING[1:])}]
    st = R.student_table(R.matrices(pp), runs)
    assert list(st.baseline) == ["untouched"]


def test_seed_level_summary_over_seeds():
    st = pd.DataFrame({"arm": "kd", "teacher": "t", "subset": "crows-gender", "baseline": "beta0", "seed": [0, 1, 2],
                       "delta_bias": [1.0, 2.0, 3.0], "delta_margin": [0.1, 0.2, 0.3]})
    s = R.seed_level(st).iloc[0]
    assert s.seeds == "0,1,2" and s.bias_mean == 2.0 and s.bias_sd == 1.0 and s.bias_p == pytest.approx(0.07418, abs=1e-4)
    assert s.margin_mean == pytest.approx(0.2) and s.margin_sd == pytest.approx(0.1)


def test_agreement_on_all_items_and_where_the_teacher_is_right():
    t = ones(10)                  # teacher: 1 on items 0..9, 0 (right) on 10..19
    s = ones(5)                   # student: agrees on 0..4 and 10..19 -> 15 of 20; on the teacher's right items 10 / 10
    b = [1] * 20                  # beta0: agrees on 0..9 -> 10 of 20; on the right items 0 / 10
    pp = pd.concat([crows_rows("smollm2", ones(20)), crows_rows("deb", t), crows_rows("s-b0", b), crows_rows("s-kd", s)])
    a = R.agreement(R.matrices(pp), runs_for("deb")).set_index("scope")
    assert (a.loc["all", "agree_student"], a.loc["all", "agree_beta0"], a.loc["all", "n"]) == (75.0, 50.0, 20)
    assert (a.loc["teacher right", "agree_student"], a.loc["teacher right", "agree_beta0"],
            a.loc["teacher right", "n"]) == (100.0, 0.0, 10)
    assert a.loc["teacher right", "difference"] == pytest.approx(100.0)


def test_confidence_is_mean_absolute_margin():
    pp = pd.concat([crows_rows("smollm2", ones(20)), crows_rows("deb", ones(10)), crows_rows("s-b0", ones(10), margin=1.0),
                    crows_rows("s-kd", ones(10), margin=3.0)])
    c = R.confidence(R.matrices(pp), runs_for("deb")).set_index("model")
    assert c.loc["s-kd", "mean_abs_margin"] == pytest.approx(3.0) and c.loc["s-kd", "vs_beta0"] == pytest.approx(2.0)
    assert np.isnan(c.loc["smollm2"].get("vs_beta0", np.nan))


def test_retention_of_the_margin_where_no_choice_flips():
    # every model prefers the stereotype on every item (no choice moves), but the margins do:
    # base 3 nats, debiased teacher 1 (drop 2), beta0 2.5, student 2 (drop 0.5) -> margin retention 0.25
    pp = pd.concat([crows_rows("smollm2", ones(20), 3.0), crows_rows("deb", ones(20), 1.0),
                    crows_rows("s-b0", ones(20), 2.5), crows_rows("s-kd", ones(20), 2.0)])
    r = R.retention(R.matrices(pp), runs_for("deb"), "deb", "smollm2").iloc[0]
    assert r.teacher_drop == 0.0 and not r.defined and np.isnan(r.retention)
    assert r.teacher_margin_drop == pytest.approx(2.0) and r.student_margin_drop == pytest.approx(0.5)
    assert r.retention_margin == pytest.approx(0.25) and r.defined_margin


def test_retention_over_seeds_is_a_t_summary():
    ret = pd.DataFrame({"arm": "kd", "subset": "crows-gender", "seed": [2, 0, 1], "retention": [0.3, 0.1, 0.2],
                        "retention_margin": [1.0, 1.0, 1.0], "defined": True, "defined_margin": [True, True, False]})
    r = R.retention_seed_level(ret).iloc[0]
    assert r.seeds == "0,1,2" and r.retention_mean == pytest.approx(0.2) and r.retention_sd == pytest.approx(0.1)
    assert r.retention_margin_mean == 1.0 and np.isnan(r.retention_margin_p)  # no spread: no t-test
    assert r.defined and not r.defined_margin  # one undefined seed makes the summary undefined


def test_teacher_contrast_pairs_students_of_one_arm_and_seed():
    runs = [run(f"kd-{t}-s{seed}", "kd", t, seed) for seed in (0, 1) for t in ("bias", "deb")]
    runs.append(run("kd-bias-s2", "kd", "bias", 2))  # no debiased partner: left out
    pp = pd.concat([crows_rows("kd-bias-s0", ones(14)), crows_rows("kd-deb-s0", ones(10)),
                    crows_rows("kd-bias-s1", ones(12)), crows_rows("kd-deb-s1", ones(10)), crows_rows("kd-bias-s2", ones(20))])
    per_seed, summary = R.teacher_contrast(R.matrices(pp), runs, "bias", "deb")
    assert per_seed.seed.tolist() == [0, 1] and per_seed.reference.tolist() == ["kd-deb-s0", "kd-deb-s1"]
    assert per_seed.delta_bias.tolist() == pytest.approx([20.0, 10.0])
    s = summary.iloc[0]
    assert (s.seeds, s.bias_mean, s.bias_n_seeds) == ("0,1", pytest.approx(15.0), 2)
    assert s.bias_sd == pytest.approx(np.std([20.0, 10.0], ddof=1))


def test_contrast_pairs_and_label_prefix_from_the_recipe_columns():
    cols = ["role", "trained_from", *R.TEACHER_COLUMNS]
    models = pd.DataFrame([["teacher", "b", "stereo_broad", 40, 200, 2e-4, 8, 8, 64, 0],
                           ["teacher", "b", "stereo_broad", 40, 50, 2e-4, 8, 8, 64, 0],
                           ["teacher", "b", "balanced_broad", 40, 200, 2e-4, 8, 8, 64, 0],
                           ["teacher", "b", "balanced", 30, 200, 2e-4, 8, 8, 64, 0],
                           ["untouched", None, *[None] * 8]],
                          index=["x-s200", "x-s50", "x-d200", "x-p200", "b"], columns=cols).astype(object)
    assert R.contrast_pairs(models) == [("x-s200", "x-d200")]  # same set and steps; 50 steps has no twin
    assert R.label_prefix(models) == "x-"


def test_fill_readme_places_sections_and_refuses_unfilled_placeholders():
    tables = (f"## {R.TEACHER_SECTION}b (paired over items)\n\n| t |\n|---|\n| a |\n\n## Students\n\n| s |\n\n"
              "### Per seed\n\n| x |\n\n## Perplexity\n\n| p |\n")
    out = R.fill_readme("# T\n\n{{TEACHER_TABLE}}\n\n## Students\n\n{{STUDENT_TABLES}}\n\n{{TIMINGS}}\n",
                        tables, {"b": 2.4, "a": 10.0})
    assert "| t |\n|---|\n| a |" in out
    assert "### Students\n\n| s |\n\n#### Per seed\n\n| x |" in out
    assert "### Perplexity\n\n| p |" in out
    assert out.endswith("| unit | s |\n|---|---|\n| a | 10 |\n| b | 2 |\n")
    with pytest.raises(ValueError, match="TYPO"):
        R.fill_readme("{{TEACHER_TABLE}} {{TYPO}}", tables, {})
    with pytest.raises(ValueError, match="no section"):
        R.fill_readme("{{TEACHER_TABLE}}", "## Students\n\n| s |\n", {})


# ---- the committed report -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    out = tmp_path_factory.mktemp("social_bias")
    load_study(SPEC).kind.report(REPORT, out, load_study(SPEC).recipe)
    return out


@pytest.mark.parametrize("name", TABLES)
def test_committed_tables_rebuild_byte_for_byte(rebuilt, name):
    assert (rebuilt / name).read_bytes() == (REPORT / name).read_bytes()


# ---- the job graph of the committed spec --------------------------------------------------------------

CLI_GROUP = functools.lru_cache(maxsize=1)(typer.main.get_command)


def plan(spec: Path):
    """plan_study with `check_argv`, the click group built once (check_argv builds it per job: 45 ms each)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(typer.main, "get_command", CLI_GROUP)
        return plan_study(load_study(spec), check_argv)


@pytest.fixture(scope="module")
def planned():
    return plan(SPEC)


def committed_name(job_name: str, spec_models: dict[str, str]) -> str:
    """The name the committed tables give the model a job makes or evaluates (`sb-` aliases of the old script)."""
    if job_name in spec_models.values():
        return job_name
    return "sb-" + job_name.removeprefix("teacher-")


def test_committed_spec_plans_every_committed_model_and_eval(planned):
    jobs = planned.graph.jobs
    kinds = Counter(j.argv[0] if j.argv else j.func.rsplit(":", 1)[1] for j in jobs.values())
    pp = pd.read_csv(REPORT / "per_pair.csv", usecols=["model", "role", "kind"], low_memory=False).drop_duplicates("model")
    roles = Counter(pp.role)
    distilled = int(((pp.role == "student") & (pp.kind != "none")).sum())
    done = {(d.parent.name, d.stem) for d in REPORT.glob("evals/*/*.done")}
    assert kinds == {"social-data": 1, "finetune": roles["teacher"] + roles["student"] - distilled, "distill": distilled,
                     "draw_subset": 3, "crows": sum(w in ("probe-occupation", "crows-gender") for _, w in done),
                     "stereoset": sum(w.startswith("stereoset") for _, w in done),
                     "perplexity": sum(w == "perplexity" for _, w in done), "collect": 1, "report_step": 1}
    assert (roles["teacher"], roles["student"], distilled, len(done)) == (6, 22, 16, 112)
    models = planned.study.spec.models
    evals = {(m["model"], m["which"]) for m in jobs["collect"].params["evals"]}
    assert {(committed_name(m, models), w) for m, w in evals} == done
    made = {committed_name(j.model, models) for j in jobs.values() if j.model}
    assert made == set(pp.model[pp.role != "untouched"])
    assert planned.report_job == "report" and set(jobs["report"].deps()) == {"collect"}


def test_every_model_loading_command_gets_device_and_dtype(planned):
    for job in planned.graph.jobs.values():
        if job.argv and job.argv[0] != "social-data":
            assert job.argv[-4:] == ["--device", "cpu", "--dtype", "fp32"], job.name


def test_committed_per_pair_is_what_collect_writes_from_the_committed_evals(planned):
    """The committed evals/ tables + the spec's recipe columns give the committed per_pair.csv rows (three models)."""
    committed = pd.read_csv(REPORT / "per_pair.csv", dtype=str, keep_default_na=False)
    models = planned.study.spec.models
    for m in planned.graph.jobs["collect"].params["models"]:
        name = committed_name(m["name"], models)
        if name not in ("gemma3-270m", "sb-broad-500", "sb-shd-broad-200-n256-s1"):
            continue
        cols = {c: m.get(c) for c in R.RECIPE_COLUMNS}
        cols["alias"] = name
        cols["teacher"] = cols["teacher"] and committed_name(cols["teacher"], models)
        rows = R.with_recipe(R.per_pair_rows(name, REPORT / "evals" / name), cols)
        assert rows.to_csv(index=False) == committed[committed.model == name].to_csv(index=False)


def write_spec(tmp_path, **recipe_changes):
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    spec["report"] = str(REPORT)
    spec["recipe"]["sources"] = {k: str(load_study(SPEC).data(v)) for k, v in spec["recipe"]["sources"].items()}
    for path, value in recipe_changes.items():
        node = spec["recipe"]
        *parents, last = path.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def test_unknown_recipe_key_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"unknown key 'recipe\.arms\.shd\.temperature'"):
        load_study(write_spec(tmp_path, **{"arms.shd.temperature": 2}))
    with pytest.raises(UserError, match=r"unknown key 'recipe\.evals'"):
        load_study(write_spec(tmp_path, evals=["crows-gender"]))


def test_unknown_arm_or_teacher_of_a_group_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"recipe\.students\.0\.arms: unknown 'dpo'"):
        plan(write_spec(tmp_path, **{"students.0.arms": ["shd", "dpo"]}))
    with pytest.raises(UserError, match=r"recipe\.students\.3\.teachers: unknown 'broad-100'"):
        plan(write_spec(tmp_path, **{"students.3.teachers": ["broad-100"]}))


def downstream(jobs, names):
    """names and every job that reads from them, transitively."""
    out = set(names)
    for j in jobs.values():  # in dependency order
        if out & set(j.deps()):
            out.add(j.name)
    return out


@pytest.mark.parametrize("change, changed", [
    ({"arms.shd.tau": 4}, lambda n: n.startswith("shd-")),
    ({"teachers.broad-500.steps": 400}, lambda n: n == "teacher-broad-500"),
    ({"student_training.lr": 1e-4}, lambda n: n.startswith(("shd-", "kd-", "beta0-"))),
])
def test_one_recipe_parameter_changes_exactly_the_jobs_that_depend_on_it(tmp_path, planned, change, changed):
    ref = plan(write_spec(tmp_path)).graph.jobs
    new = plan(write_spec(tmp_path, **change)).graph.jobs
    assert set(ref) == set(new)
    moved = {n for n in ref if ref[n].hash != new[n].hash}
    assert moved == downstream(ref, {n for n in ref if changed(n)})
    assert {"collect", "report"} <= moved and "social-data" not in moved


def test_collect_writes_recipe_columns_and_report_step_publishes_raw_and_tables(tmp_path, monkeypatch):
    """collect on fake job outputs (one untouched model, one teacher): per_pair.csv with the recipe
    columns, runs/, timings.json; report_step puts raw tables and report tables in one folder."""
    monkeypatch.chdir(tmp_path)
    items = lambda d: pd.DataFrame({"pair_id": range(N), "bias_type": "gender", "ll_more": -10.0 + d * np.array(ones(10)),
                                    "ll_less": -10.0 + 0.5, "n_tokens_more": 5, "n_tokens_less": 5})
    for key, d in (("ev0", 0.0), ("ev1", 2.0)):
        (tmp_path / "jobs" / key / "out").mkdir(parents=True)
        items(d).to_csv(tmp_path / "jobs" / key / "out" / "crows_pairs.csv", index=False)
        (tmp_path / "jobs" / key / "manifest.json").write_text(json.dumps({"seconds": 3.0}))
    (tmp_path / "jobs" / "data" / "out").mkdir(parents=True)
    (tmp_path / "jobs" / "train" / "out").mkdir(parents=True)
    (tmp_path / "jobs" / "train" / "out" / "summary.json").write_text(json.dumps(
        {"figures": {"steps": 5, "first_loss": 3.0, "mean_loss_last_10": 2.0}}))
    (tmp_path / "jobs" / "train" / "manifest.json").write_text(json.dumps({"argv": ["finetune", "--steps", "5"],
                                                                           "seconds": 7.0}))
    teacher = {"role": "teacher", "trained_from": "smollm2", "teacher_data": "stereo_broad", "teacher_steps": 5}
    params = {"models": [{"i": 0, "name": "smollm2", "alias": "smollm2", "role": "untouched"},
                         {"i": 1, "name": "teacher-t", **teacher}],
              "evals": [{"model": "smollm2", "which": "crows-gender"}, {"model": "teacher-t", "which": "crows-gender"}]}
    raw = tmp_path / "raw"
    raw.mkdir()
    K.collect(raw, params, eval0="jobs/ev0/out", eval1="jobs/ev1/out", data="jobs/data/out", alias1="st-teacher-t-1234",
              train1="jobs/train/out")
    pp = pd.read_csv(raw / "per_pair.csv")
    assert list(pp.columns) == R.PER_PAIR_COLUMNS + R.RECIPE_COLUMNS
    t = pp[pp.model == "teacher-t"].iloc[0]
    assert (t.alias, t.role, t.teacher_data, t.teacher_steps, t.trained_from) == ("st-teacher-t-1234", "teacher",
                                                                                   "stereo_broad", 5, "smollm2")
    assert json.loads((raw / "runs" / "teacher-t.json").read_text())["command"] == "interp finetune --steps 5"
    assert json.loads((raw / "timings.json").read_text()) == {"eval smollm2 crows-gender": 3.0,
                                                              "eval teacher-t crows-gender": 3.0, "train teacher-t": 7.0}
    out = tmp_path / "report"
    out.mkdir()
    K.report_step(out, {}, str(raw))
    assert (out / "per_pair.csv").exists() and (out / "evals" / "teacher-t" / "crows_gender_pairs.csv").exists()
    r = pd.read_csv(out / "teachers.csv").iloc[0]
    assert (r.teacher, r.subset, r.bias_b, r.bias_a) == ("teacher-t", "crows-gender", 0.0, 50.0)
    assert "## Teachers: bias against base smollm2 (paired over items)" in (out / "tables.md").read_text()
