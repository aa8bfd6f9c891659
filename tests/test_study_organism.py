"""The organism study's spec and job graph (interp/studies/kinds/organism.py), and the checks every spec
passes before any job runs (interp/studies/spec.py, runner.plan_study)."""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.studies.runner import plan_study
from interp.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "studies" / "organism" / "smollm2.yaml"
RAW = REPO / "reports" / "organism"


def plan(path: Path):
    return plan_study(load_study(path), check_argv)


def with_change(tmp_path: Path, change, source: Path = SPEC) -> Path:
    """A copy of the spec beside the original (relative paths still resolve) with `change(spec)` applied."""
    spec = yaml.safe_load(source.read_text())
    change(spec)
    p = source.parent / f".test-{tmp_path.name}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture
def spec_copy(tmp_path):
    made = []

    def make(change, source: Path = SPEC) -> Path:
        made.append(with_change(tmp_path, change, source))
        return made[-1]

    yield make
    for p in made:
        p.unlink(missing_ok=True)


def test_committed_spec_covers_every_committed_model_and_eval():
    g = plan(SPEC).graph
    kinds = Counter(j.argv[0] if j.argv else j.func.split(":")[-1] for j in g.jobs.values())
    runs = [json.loads(p.read_text()) for p in (RAW / "runs").glob("org-*.json")]
    evals = list((RAW / "evals").glob("*.csv"))
    roles = json.loads((RAW / "roles.json").read_text())
    assert kinds["distill"] + kinds["finetune"] == len(runs) == 90
    assert kinds["eval-animal"] == len(evals) == len(runs) + len(roles) == 95
    assert kinds["teach"] == 4  # owl / dog prompt teachers and LoRA teachers
    # every committed student recipe (arm, teacher, seed, examples, epochs) is one job of the graph
    made = {j.model for j in g.jobs.values() if j.model.startswith("student-")}
    for r in runs:
        assert f"student-{r['arm']}-{r['teacher']}-n{r['examples']}-e{float(r['epochs']):g}-s{r['seed']}" in made
    assert kinds["gen-numbers"] == 3 + 1 + 9  # three pools, the extension, keep rate (3 teachers x 3 temperatures)
    assert kinds["mark-divergence"] == 2 and kinds["leak_table"] == 1 and kinds["report_step"] == 1
    assert len(g.jobs) == 232


def test_aliases_carry_study_base_and_recipe_and_models_come_from_the_spec():
    g = plan(SPEC).graph
    student = g.jobs["train-kd-unbiased-data-lora-owl-n256-e1-s0"]
    assert student.alias.startswith("organism-smollm2-student-kd-unbiased-data-lora-owl-n256-e1-s0-")
    assert student.alias.endswith(student.hash[:8])
    assert "smollm2" not in (REPO / "interp" / "studies" / "kinds" / "organism.py").read_text()


def test_changing_one_parameter_changes_exactly_what_depends_on_it(spec_copy):
    before = plan(SPEC).graph.jobs

    def tau4(spec):
        spec["recipe"]["arms"]["kd-unbiased-data-lora-tau4"]["options"]["tau"] = 5

    after = plan(spec_copy(tau4)).graph.jobs
    changed = {n for n in before if before[n].hash != after[n].hash}
    students = {f"train-kd-unbiased-data-lora-tau4-{t}-n64-e1-s{s}" for t in ("owl", "dog") for s in (0, 1, 2)}
    evals = {n.replace("train-", "eval-student-") for n in students}
    assert changed == students | evals | {"collect", "report"}


def test_another_base_gives_other_aliases_and_never_reuses_a_model(spec_copy):
    def gemma(spec):
        spec["models"]["base"] = "gemma3-270m"

    a, b = plan(SPEC).graph.jobs, plan(spec_copy(gemma)).graph.jobs
    made = [n for n in a if a[n].alias]
    assert made and all(a[n].alias != b[n].alias and b[n].alias.startswith("organism-gemma3-270m-") for n in made)
    assert all(a[n].hash != b[n].hash for n in a if n.startswith(("teacher", "train", "eval")))


@pytest.mark.parametrize("change, message", [
    (lambda s: s["recipe"].update(tua=2), "unknown key 'recipe.tua'"),
    (lambda s: s["recipe"]["arms"]["sft"].update(optoins={}), "unknown key 'recipe.arms.sft.optoins'"),
    (lambda s: s.update(devcie="cuda"), "unknown key 'devcie'"),
    (lambda s: s["models"].update(base="smolm2"), "models.base: unknown model 'smolm2'"),
    (lambda s: s["models"].update(student="smollm2"), "unknown key 'models.student'"),
    (lambda s: s["recipe"]["arms"]["sft"].update(options={"tua": 2}),
     "job train-sft-owl-n256-e1-s0: `interp finetune` does not take the option --tua"),
    (lambda s: s["recipe"]["teachers"]["lora"]["data"].update(owl="missing.jsonl"), "missing.jsonl does not exist"),
    (lambda s: s["recipe"]["doses"][0]["arms"].append("sfft"), "recipe.doses.0.arms: unknown arm 'sfft'"),
    (lambda s: s["recipe"]["training"].update(lr=-1), "recipe.training.lr: Input should be greater than 0"),
    (lambda s: s.update(dtype="fp8"), "dtype: Input should be 'fp32', 'bf16' or 'fp16'"),
    (lambda s: s["recipe"]["arms"]["sft"].update(options={"lr": 1}), "'lr' is set by the recipe"),
    (lambda s: s["recipe"]["arms"]["sft"].update(options={"optimizer": "adam"}), "--optimizer"),
])
def test_a_bad_spec_is_refused_before_any_job_with_one_line_naming_the_key(spec_copy, change, message):
    with pytest.raises(UserError) as e:
        plan(spec_copy(change))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_spec_that_is_not_yaml_or_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_study(bad)
    bad.write_text("- a list\n")
    with pytest.raises(UserError, match="a spec is a mapping"):
        load_study(bad)
    bad.write_text(textwrap.dedent("""\
        study: x
        kind: nope
        models: {}
    """))
    with pytest.raises(UserError, match="kind 'nope' is not one of"):
        load_study(bad)


def test_tiny_spec_plans_the_organism_recipe_on_tiny_llama():
    g = plan(REPO / "studies" / "organism" / "tiny.yaml").graph
    kinds = Counter(j.argv[0] if j.argv else j.func.split(":")[-1] for j in g.jobs.values())
    assert kinds == {"teach": 2, "draw_subset": 2, "distill": 4, "eval-animal": 7, "collect": 1, "report_step": 1}
    assert all("--device" in j.argv for j in g.jobs.values() if j.argv and j.argv[0] in ("distill", "eval-animal"))


def test_adopting_the_committed_organism_leaves_no_work(tmp_path, monkeypatch):
    """A store holding the committed models under their old aliases (meta-only stand-ins here) plus the
    committed raw tables: after `adopt`, the dry run lists 0 jobs; every model is linked under its derived
    alias; a missing student is left to the runner with its reason."""
    from interp.models import store
    from interp.studies.kinds.organism import legacy
    from interp.studies.runner import adopt, run_study

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    planned = plan(SPEC)
    table = legacy(planned.study, planned.graph, RAW)
    olds = {leg.model for leg in table.values() if leg.model}
    assert len(olds) == 94  # 4 teachers + 90 students
    for old in sorted(olds - {"org-sft-owl-n256-s2"}):  # one student is not in this store
        (store.models_dir() / old).mkdir(parents=True)
        (store.models_dir() / old / store.META_FILE).write_text(json.dumps({"alias": old, "kind": "finetuned"}))
    res = adopt(planned, table, tmp_path / "study")
    assert dict(res.left) == {"train-sft-owl-n256-e1-s2": "missing: store entry org-sft-owl-n256-s2",
                              "eval-student-sft-owl-n256-e1-s2": "waits for train-sft-owl-n256-e1-s2",
                              "collect": "waits for eval-student-sft-owl-n256-e1-s2",
                              "report": "waits for collect"}
    assert len(res.ran) == 24  # the subsets
    student = planned.graph.jobs["train-kd-unbiased-data-lora-owl-n64-e2-s1"]
    assert store.read_meta(student.alias)["alias"] == "org-kd-unbiased-data-lora-owl-n64-e2-s1"
    # the subsets the adoption drew are the rows the committed students were trained on (their run records)
    rec = json.loads((RAW / "runs" / "org-kd-unbiased-data-lora-owl-n64-e2-s1.json").read_text())
    assert rec["data"].endswith("unbiased-n64-s1.jsonl")

    (store.models_dir() / "org-sft-owl-n256-s2").mkdir()
    (store.models_dir() / "org-sft-owl-n256-s2" / store.META_FILE).write_text('{"kind": "finetuned"}')
    res = adopt(planned, table, tmp_path / "study")
    assert res.left == [] and sorted(res.adopted) == ["eval-student-sft-owl-n256-e1-s2", "train-sft-owl-n256-e1-s2"]
    assert res.ran == ["collect", "report"]
    run = run_study(planned, cores=1, dry_run=True, study_dir=tmp_path / "study")
    assert run.returncode == 0 and run.jobs_to_run == 0


def test_model_names_live_only_in_specs():
    """`git grep smollm2 -- studies experiments` finds model names in spec files only (issue 33); the kinds
    and the runner name none either (their docstrings may name a spec's path)."""
    import subprocess

    names = ("smollm2", "gemma3-270m", "tiny-llama", "meta-llama", "mistralai", "gpt2-medium")
    hits = subprocess.run(["git", "grep", "-n", "-i", "-E", "|".join(names), "--", "studies", "experiments",
                           "interp/studies"], cwd=REPO, capture_output=True, text=True).stdout.splitlines()
    spec_files = (".yaml:", ".json:")
    spec_paths = re.compile(r"studies/[a-z_0-9]+/[a-z0-9.-]+\.yaml")
    bad = [h for h in hits if not any(s in h.split(":", 2)[0] + ":" for s in spec_files)
           and not spec_paths.search(h.split(":", 2)[2])]
    assert not bad, bad


def test_an_arm_s_own_learning_rate_and_optimizer(spec_copy):
    """Claim 4's arms: the optimizer as a trainer option, the learning rate as the arm's `lr` (replacing
    training.lr in the command and in the student's record); the other arms are untouched."""
    def sgd(spec):
        spec["recipe"]["arms"]["kd-sgd"] = {**spec["recipe"]["arms"]["kd-unbiased-data-lora"], "lr": 0.5,
                                            "options": {"kind": "kd", "form": "convex", "beta": 1, "tau": 1, "optimizer": "sgd"}}
        spec["recipe"]["doses"][0]["arms"].append("kd-sgd")

    before, after = plan(SPEC).graph.jobs, plan(spec_copy(sgd)).graph.jobs
    argv = after["train-kd-sgd-owl-n256-e1-s0"].argv
    assert argv[argv.index("--lr") + 1] == "0.5" and argv[argv.index("--optimizer") + 1] == "sgd"
    same = after["train-kd-unbiased-data-lora-owl-n256-e1-s0"]
    assert same.hash == before["train-kd-unbiased-data-lora-owl-n256-e1-s0"].hash


def steering_arms(spec):
    """Claim 3 of issue 36 on the organism: teachers made by steering, through SFT on their own numbers and
    KD on the unbiased numbers."""
    spec["recipe"]["teachers"]["steering"] = {"layer": 20, "alpha": 4, "project_layer": 21}
    kd = {"kind": "kd", "form": "convex", "beta": 1, "tau": 1}
    spec["recipe"]["arms"] = {"sft-steered": {"channel": "a", "trainer": "finetune", "pool": "own", "teacher": "steered"},
                              "kd-projected": {"channel": "c", "trainer": "distill", "pool": "unbiased",
                                               "teacher": "projected", "options": kd},
                              "kd-random": {"channel": "c", "trainer": "distill", "pool": "unbiased", "teacher": "random",
                                            "options": kd}}
    spec["recipe"]["doses"] = [{"arms": ["sft-steered", "kd-projected", "kd-random"], "examples": 256}]


def test_teachers_made_by_steering(spec_copy):
    jobs = plan(spec_copy(steering_arms)).graph.jobs
    pool = jobs["pool-owl-steered"].argv
    assert pool[pool.index("--model") + 1] == "smollm2"
    assert pool[pool.index("--steer") + 1].job == "vector-owl" and pool[pool.index("--steer-layer") + 1] == "20"
    assert pool[pool.index("--steer-alpha") + 1] == "4"
    sft = jobs["train-sft-steered-owl-n256-e1-s0"].argv
    assert sft[0] == "finetune" and sft[sft.index("--data") + 1].job == "subset-owl-steered-n256-s0"
    kd = jobs["train-kd-projected-dog-n256-e1-s1"].argv
    assert kd[kd.index("--teacher") + 1].job == "teacher-dog" and "--steer-tile" in kd
    assert kd[kd.index("--steer-mode") + 1] == "project" and kd[kd.index("--steer-layer") + 1] == "21"
    rnd = jobs["train-kd-random-owl-n256-e1-s2"].argv
    assert rnd[rnd.index("--steer") + 1].job == "vector-owl-random" and rnd[rnd.index("--teacher") + 1] == "smollm2"
    assert jobs["vector-dog-random"].params == {"seed": 0, "trait_index": 1}
    ev = jobs["eval-teacher-owl-steered"].argv
    assert ev[ev.index("--model") + 1] == "smollm2" and ev[ev.index("--steer") + 1].job == "vector-owl"
    names = {m.get("name") for m in jobs["collect"].params["models"]}
    assert {"teacher-owl-steered", "teacher-dog-projected", "teacher-owl-random"} <= names
    assert "pool-owl" not in jobs  # no arm trains on the prompt teacher's own numbers


def test_a_steering_arm_needs_the_steering_teachers(spec_copy):
    def without(spec):
        steering_arms(spec)
        del spec["recipe"]["teachers"]["steering"]

    with pytest.raises(UserError, match="teacher: projected but recipe.teachers.steering is not set"):
        plan(spec_copy(without))


def test_teachers_made_by_steering_end_to_end_on_a_tiny_model(tmp_path, monkeypatch):
    """Vectors, steered / projected / random teachers (evaluated under their steering), KD students, report:
    the interaction table has a row per steering arm, the teachers table one per steered teacher."""
    from interp.studies.runner import run_study

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    planned = plan(REPO / "studies" / "steering" / "tiny-distillation.yaml")
    run = run_study(planned, cores=1, study_dir=tmp_path / "study")
    assert run.returncode == 0, run.failed
    out = next((tmp_path / "study" / "jobs").glob("report-*")) / "out"
    roles = json.loads((out / "roles.json").read_text())
    assert {"teacher-owl-steered", "teacher-dog-projected", "teacher-owl-random"} <= set(roles)
    steered = pd.read_csv(out / "evals" / "teacher-owl-steered.csv")
    plain = pd.read_csv(out / "evals" / "tiny-llama.csv")
    assert (steered.p_target - plain.p_target).abs().max() > 1e-6  # the teacher was evaluated under its steering
    summary = pd.read_csv(out / "arms.csv")
    assert {"kd-steered", "kd-projected", "kd-random"} <= set(summary.arm)


FAMILIES_TINY = REPO / "studies" / "families" / "tiny.yaml"


def test_an_arm_trains_another_familys_student_and_every_model_gets_its_perplexity():
    """C8 (issue 37) as organism arms: `student: student-gpt2` trains that role's model (SHD from the
    LoRA teachers of the base); a teacher-free arm (SFT on the unbiased numbers) has one student per seed;
    the untouched student is evaluated; `perplexity: true` adds one perplexity job per evaluated model."""
    g = plan(FAMILIES_TINY).graph
    jobs = g.jobs
    shd = jobs["train-shd-gpt2-b10-owl-n16-e1-s1"].argv
    assert shd[0] == "distill" and shd[shd.index("--student") + 1] == "tiny-gpt2"
    assert shd[shd.index("--teacher") + 1].job == "teacher-owl-lora" and shd[shd.index("--kind") + 1] == "shd"
    assert shd[shd.index("--beta") + 1] == "10"
    kd = jobs["train-kd-unbiased-data-lora-dog-n16-e1-s0"].argv
    assert kd[kd.index("--student") + 1] == "tiny-llama"
    # each student's alias starts with the model it trains, not the study's base
    assert jobs["train-shd-gpt2-b10-owl-n16-e1-s1"].alias.startswith("families-tiny-tiny-gpt2-student-shd-gpt2-b10-owl-")
    assert jobs["train-kd-unbiased-data-lora-dog-n16-e1-s0"].alias.startswith("families-tiny-tiny-llama-student-kd-")
    sft = [n for n in jobs if n.startswith("train-sft-gpt2")]
    assert sorted(sft) == ["train-sft-gpt2-unbiased-n16-e1-s0", "train-sft-gpt2-unbiased-n16-e1-s1"]
    assert jobs[sft[0]].argv[:3] == ["finetune", "--model", "tiny-gpt2"]
    assert jobs["eval-student-gpt2"].argv[jobs["eval-student-gpt2"].argv.index("--model") + 1] == "tiny-gpt2"
    evals = [n for n in jobs if n.startswith("eval-")]
    assert sorted("perplexity-" + n[5:] for n in evals) == sorted(n for n in jobs if n.startswith("perplexity-"))
    collect = jobs["collect"]
    student_row = next(m for m in collect.params["models"] if m.get("arm") == "shd-gpt2-b1")
    assert student_row["student"] == "student-gpt2"
    # collect names the models it labels, it loads none: a new store would not rebuild them for it
    assert g.plan()["jobs"][collect.key]["loads"] == []


@pytest.mark.parametrize("change, message", [
    (lambda s: s["recipe"]["arms"]["shd-gpt2-b1"].update(student="student-qwen"),
     "recipe.arms.shd-gpt2-b1.student: 'student-qwen' is not a role of models"),
    (lambda s: s["recipe"]["arms"]["shd-gpt2-b1"].update(reference="sft-gtp2"),
     "recipe.arms.shd-gpt2-b1.reference: unknown arm 'sft-gtp2'"),
])
def test_an_arms_student_and_reference_must_exist(spec_copy, change, message):
    with pytest.raises(UserError, match=re.escape(message)):
        plan(spec_copy(change, FAMILIES_TINY))
