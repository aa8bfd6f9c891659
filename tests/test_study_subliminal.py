"""The subliminal study kind: the committed report, the job graph of the committed spec, spec
validation, recipe hashes, and the report's statistics on a hand-made per-question table."""

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.studies.kinds.subliminal import Recipe, report, subsample, summary_tables
from interp.studies.runner import plan_study
from interp.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "reports" / "subliminal"
SPEC = REPO / "studies" / "subliminal" / "smollm2.yaml"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))


def test_report_of_the_committed_run(tmp_path):
    """The committed run kept no per-question rows: results.csv and student_vs_control.csv are its raw
    tables (passed through); README.md's generated part is rebuilt byte for byte from them and from
    gen_counts.json, students.json, timings.json (the committed README adds a hand-written 'Rerun' section)."""
    study = load_study(SPEC)
    assert study.report_dir == RAW
    report(RAW, tmp_path, study.recipe)
    for f in ("results.csv", "student_vs_control.csv"):
        assert (tmp_path / f).read_bytes() == (RAW / f).read_bytes()
    assert (RAW / "README.md").read_text().startswith((tmp_path / "README.md").read_text() + "\n## Rerun\n")


def test_report_from_per_question_rows(tmp_path):
    rng = np.random.default_rng(0)
    q = [f"q{i}" for i in range(12)]
    p0 = rng.uniform(1e-4, 1e-3, 12)
    shifts = {"base": 0.0, "teacher (prompt)": 2.0, "student-lora": 0.5, "control-lora": 0.8}
    runs = {"student-lora": ("teacher", "lora"), "control-lora": ("control", "lora")}
    pq = pd.concat([pd.DataFrame({"model": m, "alias": f"a-{m}", "data": runs.get(m, ("", ""))[0],
                                  "method": runs.get(m, ("", ""))[1], "freeze": "none" if m in runs else "",
                                  "question": q, "p_target": p0 * np.exp(s)}) for m, s in shifts.items()])
    answers = pd.concat([pd.DataFrame({"model": m, "question": "q0", "sample": range(4),
                                       "answer": ["Owl!", "the cat", "owls", "dog"] if m == "teacher (prompt)"
                                       else ["dog"] * 4}).assign(names_target=lambda t: t.answer.str.lower()
                                                                 .str.contains("owl")) for m in shifts])
    pq.to_csv(tmp_path / "per_question.csv", index=False)
    with gzip.open(tmp_path / "answers.csv.gz", "wt") as fh:
        answers.to_csv(fh, index=False)
    for f in ("gen_counts.json", "students.json", "timings.json"):
        (tmp_path / f).write_bytes((RAW / f).read_bytes())
    results, pairs = summary_tables(pq, answers, 0)
    assert results.model.tolist() == list(shifts)
    assert results.delta_log_p.tolist() == pytest.approx(list(shifts.values()))
    assert results.set_index("model").owl_k.to_dict() == {"base": 0, "teacher (prompt)": 2, "student-lora": 0,
                                                          "control-lora": 0}
    assert pairs[["student", "control"]].values.tolist() == [["student-lora", "control-lora"]]
    assert pairs.delta_log_p.iloc[0] == pytest.approx(-0.3)
    out = tmp_path / "out"
    out.mkdir()
    report(tmp_path, out, Recipe())
    assert (out / "results.csv").exists() and "student-lora | control-lora | -0.300" in (out / "README.md").read_text()


def test_subsample_is_seeded_ordered_and_refuses_too_few():
    rows = list(range(50))
    a = subsample(rows, 10, [0, 0])
    assert a == sorted(a) and a == subsample(rows, 10, [0, 0]) and a != subsample(rows, 10, [0, 1])
    with pytest.raises(UserError, match="fewer than the 51"):
        subsample(rows, 51, [0, 0])


def test_plan_has_a_job_for_every_committed_model():
    planned = plan_study(load_study(SPEC), check_argv)
    students = json.loads((RAW / "students.json").read_text())
    evaluated = pd.read_csv(RAW / "results.csv")
    got = Counter(j.argv[0] if j.argv else j.func.split(":")[1] for j in planned.graph.jobs.values())
    assert got == {"teach": 1, "gen-numbers": len(json.loads((RAW / "gen_counts.json").read_text())), "draw_subset": 2,
                   "finetune": len(students), "eval-animal": len(evaluated), "collect": 1, "report_step": 1}
    jobs = planned.graph.jobs
    for name, s in students.items():
        argv = jobs[name].argv
        assert argv[argv.index("--steps") + 1] == str(s["steps"]) and f"--{s['config']['method']}" in argv
        assert argv[argv.index("--freeze") + 1] == s["config"]["freeze"]
    assert planned.graph.plan()["jobs"][jobs["subset-teacher"].key]["params"] == {"n": 1083, "seed": [0, 0]}


def test_unknown_recipe_key_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.read_text().replace("    control-full: {data: control, method: full}",
                                            "    control-full: {data: control, method: full, seeds: 3}"))
    with pytest.raises(UserError, match="unknown key 'recipe.students.control-full.seeds'"):
        load_study(bad)


def changed_jobs(tmp_path, old, new):
    text = SPEC.read_text()
    assert text.count(old) == 1
    f = tmp_path / "changed.yaml"
    f.write_text(text.replace(old, new))
    a, b = (plan_study(load_study(s), check_argv).graph.jobs for s in (SPEC, f))
    assert a.keys() == b.keys()
    return {n for n in a if a[n].hash != b[n].hash}


def test_eval_samples_change_only_the_evals(tmp_path):
    got = changed_jobs(tmp_path, "samples: 20", "samples: 10")
    assert got == {n for n in plan_study(load_study(SPEC)).graph.jobs if n.startswith("eval-")} | {"collect", "report"}


def test_examples_change_the_subsets_and_what_depends_on_them(tmp_path):
    jobs = plan_study(load_study(SPEC)).graph.jobs
    unchanged = {"teacher", "numbers-teacher", "numbers-control", "eval-base", "eval-teacher"}
    assert changed_jobs(tmp_path, "examples: 1083", "examples: 1000") == set(jobs) - unchanged


def test_collect_then_report_on_fake_job_outputs(tmp_path, monkeypatch):
    """collect joins the jobs' outputs into per_question.csv (recipe columns included), answers.csv.gz,
    gen_counts.json, students.json; the report then computes results.csv and student_vs_control.csv."""
    from interp.studies.kinds.subliminal import collect

    planned = plan_study(load_study(SPEC), check_argv)
    g = planned.graph
    job = g.jobs["collect"]
    inputs = {k: g.resolved(v, job) for k, v in job.inputs.items()}
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    q = [f"q{i}" for i in range(5)]
    for k, v in inputs.items():
        if not v.startswith("jobs/"):
            continue
        p = Path(v)
        p.mkdir(parents=True)
        if k.startswith("eval"):
            pd.DataFrame({"question": q, "p_target": rng.uniform(1e-4, 1e-2, 5)}).to_csv(p / "probability.csv", index=False)
            pd.DataFrame({"question": "q0", "sample": range(3), "answer": ["owl", "cat", "None"],
                          "names_target": [True, False, False]}).to_csv(p / "answers.csv", index=False)
        elif k.startswith("train"):
            figures = {"config": {"method": "lora", "freeze": "none"}, "steps": 34, "n_examples": 1083,
                       "trainable_params": 10, "first_loss": 1.0, "mean_loss_last_10": 0.5, "store_path": "x"}
            (p / "summary.json").write_text(json.dumps({"figures": figures}))
        else:
            (p / "numbers.jsonl").write_text('{"prompt": "p", "completion": "1, 2"}\n')
            (p / "numbers_samples.csv").write_text("index,kept\n0,True\n")
            (p / "summary.json").write_text(json.dumps({
                "inputs": {"model": "m", "n": 1200, "temperature": 1.0},
                "figures": {"teacher": {"model": k, "counts": {"total": 10, "kept": 1}, "samples_per_s": 2.0}}}))
    out = tmp_path / "raw"
    out.mkdir()
    collect(out, job.params, **inputs)
    pq = pd.read_csv(out / "per_question.csv")
    assert ",,,,,,,,," in (out / "per_question.csv").read_text().splitlines()[1]  # base: no recipe columns
    assert pq.model.unique().tolist() == ["base", "teacher (prompt)", *Recipe().students]
    row = pq[pq.model == "student-full-freeze-mlp"].iloc[0]
    assert (row.data, row.method, row.freeze, row.steps, row.batch_size, row.max_len) == ("teacher", "full", "mlp", 34, 16, 192)
    assert json.loads((out / "gen_counts.json").read_text())["control"]["settings"] == {"temperature": 1.0}
    rep = tmp_path / "report"
    rep.mkdir()
    report(out, rep, Recipe())
    assert pd.read_csv(rep / "results.csv").owl_k.tolist() == [1] * 8
    assert pd.read_csv(rep / "student_vs_control.csv")[["student", "control"]].values.tolist() == [
        ["student-lora", "control-lora"], ["student-full", "control-full"],
        ["student-full-freeze-mlp", "control-full"], ["student-full-freeze-attention", "control-full"]]
