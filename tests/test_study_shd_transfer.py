"""The shd_transfer study kind: the committed report rebuilt from its raw tables, the job graph of the
committed specs, spec validation and recipe hashes."""

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.studies.kinds.shd_transfer_report import report
from interp.studies.runner import plan_study
from interp.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]
SPECS = {"smollm2": REPO / "reports" / "shd", "six_seeds": REPO / "reports" / "shd" / "six_seeds"}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))


def spec(name):
    return REPO / "studies" / "shd_transfer" / f"{name}.yaml"


@pytest.mark.parametrize("name", SPECS)
def test_report_rebuilds_the_committed_tables_byte_for_byte(name, tmp_path):
    raw = SPECS[name]
    study = load_study(spec(name))
    assert study.report_dir == raw
    report(raw, tmp_path, study.recipe)
    for f in ("summary.csv", "summary.json", "delta_owl.png"):
        assert (tmp_path / f).read_bytes() == (raw / f).read_bytes(), f
    # README.md: the generated part; reports/shd/README.md adds a hand-written section on the six seeds
    made, committed = (tmp_path / "README.md").read_text(), (raw / "README.md").read_text()
    assert committed == made or committed.startswith(made + "\n## Six seeds")


def test_results_name_every_recipe_parameter():
    d = pd.read_csv(SPECS["smollm2"] / "results.csv")
    args = json.loads((SPECS["smollm2"] / "run.json").read_text())["args"]
    for k in ("steps", "batch_size", "lr", "max_len", "teacher_lr", "teacher_n_pref", "n_data", "temperature"):
        assert set(d[k]) == {args[k]}, k
    kinds = d.drop_duplicates("condition").set_index("condition")
    assert kinds.kind.value_counts().to_dict() == {"shd": 3, "kd": 2, "none": 2}
    assert set(kinds[kinds.kind == "none"].beta) == {0.0} and kinds[kinds.kind == "none"].tau.isna().all()


def kinds_of(planned):
    return Counter(j.argv[0] if j.argv else j.func.split(":")[1] for j in planned.graph.jobs.values())


@pytest.mark.parametrize("name", SPECS)
def test_plan_has_a_job_for_every_committed_model(name):
    raw = SPECS[name]
    planned = plan_study(load_study(spec(name)), check_argv)
    d = pd.read_csv(raw / "results.csv")
    students = len(d.drop_duplicates(["condition", "seed"]))
    teachers = pd.read_csv(raw / "teachers.csv").teacher.nunique()
    assert kinds_of(planned) == {"teach": teachers, "gen-numbers": 1, "distill": students,
                                 "evaluate": students + teachers + 2, "collect": 1, "report_step": 1}
    assert planned.report_job == "report"
    for job in planned.graph.jobs.values():
        if job.argv and job.argv[0] in ("teach", "distill"):
            assert job.model and job.alias.startswith(f"shd-smollm2-{job.model}-")


def test_six_seeds_reuses_the_jobs_of_the_three_seed_run():
    three = plan_study(load_study(spec("smollm2")), check_argv).graph.jobs
    six = plan_study(load_study(spec("six_seeds")), check_argv).graph.jobs
    shared = {n for n in six if n in three and six[n].key == three[n].key}
    assert {"teacher-20", "numbers", "shd-biased-20-s0", "beta0-smollm2-s2", "eval-kd-biased-20-s1"} <= shared


def test_unknown_recipe_key_is_refused(tmp_path):
    text = spec("smollm2").read_text().replace("recipe:\n", "recipe:\n  tua: 2.0\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("../../reports/shd", str(SPECS["smollm2"])))
    with pytest.raises(UserError, match="unknown key 'recipe.tua'"):
        load_study(bad)


def changed_jobs(tmp_path, old, new):
    text = spec("smollm2").read_text()
    assert text.count(old) == 1
    f = tmp_path / "changed.yaml"
    f.write_text(text.replace(old, new))
    a = plan_study(load_study(spec("smollm2")), check_argv).graph.jobs
    b = plan_study(load_study(f), check_argv).graph.jobs
    assert a.keys() == b.keys()
    return {n for n in a if a[n].hash != b[n].hash}


def test_tau_changes_only_the_distillations_that_use_it(tmp_path):
    jobs = plan_study(load_study(spec("smollm2")), check_argv).graph.jobs
    trained = {n for n, j in jobs.items() if j.argv and j.argv[0] == "distill" and "none" not in j.argv}
    assert len(trained) == 15
    want = trained | {f"eval-{n}" for n in trained} | {"collect", "report"}
    assert changed_jobs(tmp_path, "tau: 2.0", "tau: 1.5") == want


def test_teacher_lr_changes_the_teachers_and_what_they_teach(tmp_path):
    got = changed_jobs(tmp_path, "teacher_lr: 0.001", "teacher_lr: 0.002")
    biased = {f"{k}-biased-{s}-s{seed}" for k in ("shd", "kd") for s in (20, 80) for seed in range(3)}
    assert got == ({"teacher-20", "teacher-80", "eval-teacher-20", "eval-teacher-80", "collect", "report"}
                   | biased | {f"eval-{n}" for n in biased})


def test_collect_rebuilds_the_committed_raw_tables_from_job_outputs(tmp_path, monkeypatch):
    """Fake job outputs (scores.csv, probe.json, losses.csv of every job, cut from the committed tables) ->
    collect writes results.csv, teachers.csv, reverse_link.csv, losses.csv byte for byte as committed
    (the model aliases and the beta = 0 condition names of a new run aside)."""
    from interp.studies.kinds.shd_transfer import collect

    raw = SPECS["smollm2"]
    run = json.loads((raw / "run.json").read_text())
    planned = plan_study(load_study(spec("smollm2")), check_argv)
    g = planned.graph
    job = g.jobs["collect"]
    inputs = {k: g.resolved(v, job) for k, v in job.inputs.items()}
    monkeypatch.chdir(tmp_path)
    for k, v in inputs.items():
        if v.startswith("jobs/"):
            Path(v).mkdir(parents=True)
    rename = {"beta0-gemma3-270m": "beta0-gemma"} | {inputs[f"teacher{s}"]: f"smollm2-owl-lora{s}" for s in (20, 80)}
    d = pd.read_csv(raw / "results.csv", float_precision="round_trip")
    rl = pd.read_csv(raw / "reverse_link.csv", float_precision="round_trip")
    losses = pd.read_csv(raw / "losses.csv", float_precision="round_trip")
    cols = ["prompt", "animal"]
    for role, model in run["models"].items():
        base = d[d.student == model].drop_duplicates(cols)[cols + ["logp_base"]].rename(columns={"logp_base": "logp"})
        base.to_csv(Path(inputs[f"untrained_{role}"]) / "scores.csv", index=False)
        (Path(inputs[f"untrained_{role}"]) / "probe.json").write_text(json.dumps(run["baseline_reverse_link"][model]))
    teachers = pd.read_csv(raw / "teachers.csv", float_precision="round_trip")
    for s in (20, 80):
        teachers[teachers.teacher_steps == s][cols + ["logp"]].to_csv(Path(inputs[f"teacher{s}_eval"]) / "scores.csv",
                                                                      index=False)
    for r in job.params["runs"]:
        name, seed = rename.get(r["name"], r["name"]), r["seed"]
        ev, train = Path(inputs[f"{r['key']}_eval"]), Path(inputs[f"{r['key']}_train"])
        d[(d.condition == name) & (d.seed == seed)][cols + ["logp"]].to_csv(ev / "scores.csv", index=False)
        row = rl[(rl.condition == name) & (rl.seed == seed)].iloc[0]
        (ev / "probe.json").write_text(json.dumps({k: row[k] for k in ("rl_bias_ratio", "rl_specificity",
                                                                        "rl_specificity_vs_template")}))
        ls = losses[(losses.condition == name) & (losses.seed == seed)].drop(columns=["condition", "seed"])
        ls.dropna(axis=1, how="all").to_csv(train / "losses.csv", index=False)
    (Path(inputs["data"]) / "numbers.jsonl").write_bytes((raw / "numbers.jsonl").read_bytes())
    counts = json.loads((raw / "data_counts.json").read_text())
    (Path(inputs["data"]) / "summary.json").write_text(json.dumps({
        "inputs": {"model": "m", "control": None, "n": 128, "start": 0, "templates": "packaged", **counts.pop("settings")},
        "figures": {"teacher": {"counts": counts}}}))
    out = tmp_path / "collected"
    out.mkdir()
    collect(out, job.params, **inputs)
    for f in ("results.csv", "teachers.csv", "reverse_link.csv", "losses.csv", "numbers.jsonl", "data_counts.json"):
        text = (out / f).read_text()
        for new, old in rename.items():
            text = text.replace(new, old)
        assert text == (raw / f).read_text(), f
    made = json.loads((out / "run.json").read_text())
    assert made["models"] == run["models"] and made["baseline_reverse_link"] == run["baseline_reverse_link"]
