"""Running studies for real (Snakemake, interp/studies/runner.py): the tiny organism end to end after a
SIGKILL mid-job, a rerun that has nothing to do, one changed parameter that reruns exactly its
dependents, two runners on one study, a failing branch, and the same study through a local SLURM.

Each test runs `interp study run` as a separate process in its own INTERP_HOME (about 1 minute each on
2 cores; the SLURM one 2-3 minutes, and only where a cluster answers: scripts/slurm_local.sh)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "studies" / "organism" / "tiny.yaml"
POOL = REPO / "reports" / "organism" / "data" / "unbiased.jsonl"


def study(home: Path, *args: str, spec: Path = TINY, **kw) -> subprocess.Popen:
    env = {**os.environ, "INTERP_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "interp", "study", "run", str(spec), *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def finish(p: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def manifests(d: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in d.glob("jobs/*/manifest.json")}


def alive(pattern: str) -> bool:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


def small_spec(tmp: Path, doses: list[dict]) -> Path:
    spec = yaml.safe_load(TINY.read_text())
    spec["study"] = "organism-tiny-faults"
    spec["recipe"]["numbers"]["pool_files"] = {"unbiased": str(POOL)}
    spec["recipe"]["doses"] = doses
    p = tmp / "spec.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def test_tiny_organism_survives_sigkill_then_has_nothing_to_do_and_reruns_only_dependents(tmp_path):
    home = tmp_path / "home"
    d = home / "studies" / "organism-tiny"
    runner = study(home, "--cores", "2")
    deadline = time.time() + 300
    while time.time() < deadline:  # kill the whole runner (Snakemake and its jobs) while a student trains
        logs = list(d.glob("logs/train-*.log"))
        if any("$ interp distill" in p.read_text() for p in logs):
            break
        time.sleep(0.2)
    else:
        pytest.fail("no training job started")
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
    for _ in range(300):
        if not alive(str(d)):
            break
        time.sleep(0.2)
    # what the kill left: jobs without manifests; no store entry of a model without its metadata
    done = manifests(d)
    plan = json.loads((d / "plan.json").read_text())["jobs"]
    assert len(done) < len(plan) == 17
    for key, job in plan.items():
        if job["alias"] and key not in done:
            entry = home / "models" / job["alias"]
            assert not entry.exists() or (entry / "interp_model.json").exists()
    assert any((d / ".snakemake" / "locks").glob("*")), "a killed Snakemake leaves its lock"

    code, out = finish(study(home, "--cores", "2"))
    assert code == 0, out
    assert "unlocking" in out and "Snakemake's lock was left by a runner that is gone" in out
    done = manifests(d)
    assert sorted(done) == sorted(plan)
    report = (d / "jobs" / [k for k in plan if k.startswith("report-")][0] / "out")
    for f in ("per_question.csv", "per_seed.csv", "arms.csv", "models.json", "roles.json"):
        assert (report / f).is_file()
    assert len(list((report / "runs").glob("*.json"))) == 4

    code, out = finish(study(home, "--cores", "2", "--dry-run"))
    assert code == 0 and out.strip().endswith("0 jobs to run"), out

    spec = yaml.safe_load(TINY.read_text())
    spec["recipe"]["training"]["lr"] = 1e-4
    spec["recipe"]["numbers"]["pool_files"] = {"unbiased": str(POOL)}
    changed = tmp_path / "lr.yaml"
    changed.write_text(yaml.safe_dump(spec, sort_keys=False))
    code, out = finish(study(home, "--cores", "2", "--dry-run", spec=changed))
    assert code == 0 and out.strip().endswith("10 jobs to run"), out  # 4 students, their 4 evals, collect, report


def test_second_runner_is_refused_and_a_failing_branch_leaves_the_others_running(tmp_path):
    home = tmp_path / "home"
    spec = small_spec(tmp_path, [{"arms": ["kd-unbiased-data"], "examples": 8, "seeds": [0]},
                                 {"arms": ["kd-unbiased-data"], "examples": 100000, "seeds": [1]}])
    d = home / "studies" / "organism-tiny-faults"
    first = study(home, "--cores", "2", spec=spec)
    for _ in range(600):
        if (d / "plan.json").exists():
            break
        time.sleep(0.1)
    code, out = finish(study(home, "--cores", "2", spec=spec))
    assert code == 2 and "is being run by another runner (pid" in out, out
    assert "rule job" not in out and "Building DAG" not in out  # it started nothing

    code, out = finish(first)
    assert code == 1, out
    failed = [line for line in out.splitlines() if " failed; its log: " in line]
    assert len(failed) == 1 and failed[0].startswith("job subset-unbiased-n100000-s1 failed"), out
    log = Path(failed[0].split("its log: ")[1])
    assert "fewer than the 100000 examples" in log.read_text()
    names = {m["name"] for m in manifests(d).values()}
    # the other branch ran to its end: teachers, the s0 students and every eval that does not need s1
    assert {"teacher-owl", "teacher-dog", "subset-unbiased-n8-s0", "train-kd-unbiased-data-owl-n8-e1-s0",
            "eval-student-kd-unbiased-data-dog-n8-e1-s0", "eval-base"} <= names
    assert not any("s1" in n for n in names) and "collect" not in names


def test_a_study_folder_moved_to_a_new_store_redoes_only_the_models_still_needed(tmp_path):
    """A study folder carried to another machine (committed, then checked out: every file gets a new
    mtime, no .snakemake, an empty store) resumes: done jobs stay done, whatever their files' dates; a
    done job whose model is gone is redone only when a job not done yet needs it (the teachers, for the
    new seed's students; not the old students, whose evaluations are done)."""
    work = tmp_path / "study"
    one = small_spec(tmp_path, [{"arms": ["kd-unbiased-data"], "examples": 8, "seeds": [0]}])
    code, out = finish(study(tmp_path / "home-a", "--cores", "2", "--workdir", str(work), spec=one))
    assert code == 0, out
    before = manifests(work)
    shutil.rmtree(work / ".snakemake")
    for i, p in enumerate(sorted(work.rglob("*"), reverse=True)):  # outputs older than their inputs
        os.utime(p, (1e9 + i, 1e9 + i))

    two = small_spec(tmp_path, [{"arms": ["kd-unbiased-data"], "examples": 8, "seeds": [0, 1]}])
    home = tmp_path / "home-b"
    code, out = finish(study(home, "--cores", "2", "--workdir", str(work), "--dry-run", spec=two))
    redo = sorted(line.split(":")[0] for line in out.splitlines() if line.startswith("would redo "))
    assert code == 0 and redo == ["would redo teacher-dog", "would redo teacher-owl"], out
    # the two teachers, subset s1, two s1 students and their evaluations, collect, report
    assert out.strip().endswith("9 jobs to run"), out
    assert manifests(work) == before  # a dry run moves nothing
    # a slice redoes only the models its own jobs load: the owl student of seed 1 needs the owl teacher alone
    code, out = finish(study(home, "--cores", "2", "--workdir", str(work), "--dry-run",
                             "--only", "eval-student-*-owl-n8-e1-s1", spec=two))
    redo = sorted(line.split(":")[0] for line in out.splitlines() if line.startswith("would redo "))
    assert code == 0 and redo == ["would redo teacher-owl"], out
    assert out.strip().endswith("4 jobs to run"), out  # the teacher, subset s1, the student, its evaluation

    code, out = finish(study(home, "--cores", "2", "--workdir", str(work), spec=two))
    assert code == 0, out
    after = manifests(work)
    kept = {k for k, m in before.items() if m["name"] not in ("teacher-owl", "teacher-dog", "collect", "report")}
    assert kept and all(after[k] == before[k] for k in kept)
    redone = {m["name"]: m for k, m in after.items() if k in before and after[k] != before[k]}
    assert sorted(redone) == ["teacher-dog", "teacher-owl"]
    assert len(list(work.glob("jobs/teacher-owl-*/manifest.gone-*.json"))) == 1
    assert not any((home / "models").glob("*student*-s0-*"))  # the old students were not rebuilt
    code, out = finish(study(home, "--cores", "2", "--workdir", str(work), "--dry-run", spec=two))
    assert code == 0 and out.strip().endswith("0 jobs to run"), out


def slurm_answers() -> bool:
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    return r.returncode == 0 and any(s in r.stdout for s in ("idle", "mix", "alloc"))


@pytest.mark.skipif(not slurm_answers(), reason="no SLURM cluster answers (scripts/slurm_local.sh start)")
def test_tiny_organism_through_slurm(tmp_path):
    home = tmp_path / "home"
    code, out = finish(study(home, "--executor", "slurm", "--jobs", "2", "--slurm-status-command", "squeue",
                             "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "3"),
                       timeout=900)
    assert code == 0, out
    ids = [line for line in out.splitlines() if "has been submitted with SLURM jobid" in line]
    assert len(ids) == 17, out
    done = manifests(home / "studies" / "organism-tiny")
    assert len(done) == 17 and all(m["slurm_job_id"] for m in done.values())


def test_prune_deletes_only_done_models_that_nothing_still_needs(tmp_home, tmp_path):
    """`prunable_models` on a hand-made plan and store: a student whose evaluation is done goes; a teacher
    a not-done student still loads stays, and so do a prompt entry, a link, a model a prompt entry is built
    on, and a job's model outside `jobs_like`; `remove_entry` frees the folder's bytes and refuses the rest."""
    from interp.errors import UserError
    from interp.models.store import entry_dir, read_meta, remove_entry, write_meta
    from interp.studies.runner import prunable_models

    def made(alias: str, kind: str = "made", base: str | None = None, size: int = 1000) -> None:
        d = entry_dir(alias)
        d.mkdir(parents=True)
        write_meta(d, {"alias": alias, "kind": kind, "base": base})
        if size:
            (d / "model.safetensors").write_bytes(b"\0" * size)

    made("t-lora"), made("t-prompt", kind="prompt", base="t-lora", size=0)
    made("s0"), made("s1"), made("s-linked-target"), made("u")
    os.symlink("s-linked-target", entry_dir("s-linked"))
    jobs = {  # key -> the plan's record: name, alias, deps, loads
        "teacher-lora-k": {"name": "teacher-lora", "alias": "t-lora", "deps": [], "loads": []},
        "teacher-prompt-k": {"name": "teacher-prompt", "alias": "t-prompt", "deps": [], "loads": []},
        "train-s0-k": {"name": "train-s0", "alias": "s0", "deps": ["teacher-lora-k"], "loads": ["teacher-lora-k"]},
        "eval-s0-k": {"name": "eval-s0", "alias": "", "deps": ["train-s0-k"], "loads": ["train-s0-k"]},
        "train-s1-k": {"name": "train-s1", "alias": "s1", "deps": ["teacher-lora-k"], "loads": ["teacher-lora-k"]},
        "eval-s1-k": {"name": "eval-s1", "alias": "", "deps": ["train-s1-k"], "loads": ["train-s1-k"]},
        "train-l-k": {"name": "train-l", "alias": "s-linked", "deps": [], "loads": []},
        "train-u-k": {"name": "train-u", "alias": "u", "deps": [], "loads": []},
        "collect-k": {"name": "collect", "alias": "", "deps": ["eval-s0-k", "train-s0-k"], "loads": []},
    }
    study = tmp_path / "study"
    for key in set(jobs) - {"eval-s1-k", "collect-k"}:  # s1's evaluation and the collection are not done
        (study / "jobs" / key).mkdir(parents=True)
        (study / "jobs" / key / "manifest.json").write_text("{}")

    gone, kept = prunable_models({"jobs": jobs}, study)
    size = {a: 1000 + (entry_dir(a) / "interp_model.json").stat().st_size for a in ("s0", "u")}  # weights + meta
    assert [(p.alias, p.size) for p in gone] == [("s0", size["s0"]), ("u", size["u"])]
    assert dict(kept) == {"t-lora": "t-prompt needs it", "t-prompt": "a prompt entry (no weights of its own)",
                          "s1": "eval-s1 (not done) loads it", "s-linked": "a link to another entry"}
    assert [p.alias for p in prunable_models({"jobs": jobs}, study, "train-u*")[0]] == ["u"]

    assert remove_entry("s0") == size["s0"] and read_meta("s0") is None and not entry_dir("s0").exists()
    for alias in ("t-lora", "s-linked", "smollm2-not-there"):
        with pytest.raises(UserError):
            remove_entry(alias)
    assert read_meta("t-lora") is not None and entry_dir("s-linked").is_symlink()


def test_only_runs_the_named_jobs_and_what_they_need(tmp_path):
    """`--only PATTERN` (fnmatch on job names, repeatable) hands Snakemake those jobs as targets: a dry run
    lists them and their inputs, nothing else; a pattern that names no job is refused before Snakemake runs."""
    home = tmp_path / "home"
    code, out = finish(study(home, "--cores", "1", "--dry-run", "--only", "eval-base", "--only", "perplexity-nope*"))
    assert code != 0 and "perplexity-nope*" in out and "jobs to run" not in out, out
    code, out = finish(study(home, "--cores", "1", "--dry-run", "--only", "eval-base"))
    assert code == 0 and out.strip().endswith("1 jobs to run"), out
    code, out = finish(study(home, "--cores", "1", "--dry-run", "--only", "eval-teacher-owl"))
    assert code == 0 and out.strip().endswith("2 jobs to run"), out  # the teacher, then its evaluation
    code, out = finish(study(home, "--cores", "1", "--dry-run"))
    everything = int(out.strip().split()[-4])
    assert code == 0 and everything > 10, out


def test_interim_report_uses_the_done_jobs_alone_and_equals_the_report_once_all_are_done(tmp_path):
    """`interp study interim`: after a slice (seed 0's students) the report holds seed 0 alone and names the
    missing seed-1 evaluations; once every job is done it is the report job's report, table for table."""
    home = tmp_path / "home"
    d = home / "studies" / "organism-tiny"
    env = {**os.environ, "INTERP_HOME": str(home), "OMP_NUM_THREADS": "1"}

    def interim(out: Path) -> str:
        r = subprocess.run([sys.executable, "-m", "interp", "study", "interim", str(TINY), "--out", str(out)],
                           env=env, cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    r = subprocess.run([sys.executable, "-m", "interp", "study", "interim", str(TINY)], env=env, cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "nothing to report yet" in r.stderr and "Traceback" not in r.stderr, r.stderr
    code, out = finish(study(home, "--cores", "2", "--only", "eval-*-s0", "--only", "eval-base", "--only", "eval-teacher-*"))
    assert code == 0, out
    shown = interim(tmp_path / "part")
    per_seed = pd.read_csv(tmp_path / "part" / "per_seed.csv")
    assert sorted(per_seed["seed"].unique()) == [0], per_seed
    assert "eval-student-kd-unbiased-data-owl-n16-e1-s1" in shown and "-s0" not in shown.split("left out:")[1], shown
    mark = json.loads((tmp_path / "part" / "interim.json").read_text())
    assert "eval-student-kd-unbiased-data-dog-n16-e1-s1" in mark["jobs_not_done"]
    assert (tmp_path / "part" / "tables.md").read_text().startswith("> **Interim**")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a report")
    r = subprocess.run([sys.executable, "-m", "interp", "study", "interim", str(TINY), "--out", str(tmp_path / "other")],
                       env=env, cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0 and "not an interim report" in r.stderr and (tmp_path / "other" / "notes.txt").exists()

    code, out = finish(study(home, "--cores", "2"))
    assert code == 0, out
    plan = json.loads((d / "plan.json").read_text())["jobs"]
    report = d / "jobs" / next(k for k in plan if k.startswith("report-")) / "out"
    assert "left out" not in interim(tmp_path / "full")
    assert json.loads((tmp_path / "full" / "interim.json").read_text())["jobs_not_done"] == []
    for f in ("per_question.csv", "per_seed.csv", "arms.csv", "teachers.csv", "tables.md", "models.json"):
        assert (tmp_path / "full" / f).read_bytes() == (report / f).read_bytes(), f
    assert sorted(pd.read_csv(tmp_path / "full" / "per_seed.csv")["seed"].unique()) == [0, 1]


def test_a_slice_run_publishes_no_report_and_keeps_an_interim_mark(tmp_path, tmp_home):
    """publish_report after a `--only` slice that left the report job out: nothing copied, the interim
    report's mark stays (it was removed, so an interim report read as the full one); once the report job
    is done, its tables are copied and the mark goes."""
    from interp.cli.study_cmd import check_argv
    from interp.studies.execute import manifest_path
    from interp.studies.runner import INTERIM_MARK, plan_study, publish_report
    from interp.studies.spec import load_study

    spec = yaml.safe_load(TINY.read_text())
    spec["recipe"]["numbers"]["pool_files"] = {"unbiased": str(POOL)}
    spec["report"] = str(tmp_path / "published")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    planned = plan_study(load_study(tmp_path / "spec.yaml"), check_argv)
    study_dir, dest = tmp_path / "study", tmp_path / "published"
    dest.mkdir()
    (dest / INTERIM_MARK).write_text("{}")
    (dest / "tables.md").write_text("> **Interim** ...")

    assert publish_report(planned, study_dir) == []
    assert (dest / INTERIM_MARK).exists() and (dest / "tables.md").read_text() == "> **Interim** ..."

    key = planned.graph.jobs[planned.report_job].key
    (study_dir / "jobs" / key / "out").mkdir(parents=True)
    (study_dir / "jobs" / key / "out" / "tables.md").write_text("the full report")
    manifest_path(study_dir, key).write_text("{}")
    assert publish_report(planned, study_dir) == [dest / "tables.md"]
    assert not (dest / INTERIM_MARK).exists() and (dest / "tables.md").read_text() == "the full report"
