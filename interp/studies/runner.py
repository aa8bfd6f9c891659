"""Plan a study from its spec, check it before any compute, and run it with Snakemake.

    study = load_study(Path("studies/organism/tiny.yaml"))
    planned = plan_study(study, check_argv)               # the job graph, validated
    result = run_study(planned, cores=2, dry_run=True)    # StudyRun(jobs_to_run=..., failed=[...])

The study folder (`$INTERP_HOME/studies/<study>` unless given) holds plan.json, jobs/<key>/{out,
manifest.json}, logs/<key>.log, benchmarks/<key>.tsv and Snakemake's own .snakemake/. A job is done
when its manifest exists; its key carries its recipe hash, so a manifest of another recipe never
counts. One runner at a time per study folder: the runner holds an flock on .runner.lock while it
runs (the kernel drops it when the process dies), so a second runner is refused with one line, and a
runner that finds Snakemake's lock left by a killed one (no flock held) unlocks it and goes on.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from interp.errors import UserError
from interp.studies.execute import manifest_path, step_function, write_json_atomic
from interp.studies.graph import Graph
from interp.studies.spec import Study

SNAKEFILE = Path(__file__).with_name("Snakefile")
INTERIM_MARK = "interim.json"  # in an interim report's folder: when, and the jobs it lacks; publish_report removes it
ArgvCheck = Callable[[list[str]], "str | None"]


@dataclass
class PlannedStudy:
    study: Study
    graph: Graph
    report_job: str = ""

    @property
    def name(self) -> str:
        return self.study.spec.study


@dataclass
class StudyRun:
    study_dir: Path
    jobs_to_run: int
    returncode: int
    failed: list[tuple[str, Path]] = field(default_factory=list)
    published: list[Path] = field(default_factory=list)


def model_problem(name: str, made: set[str]) -> str | None:
    """Why `name` cannot name a model here, or None: an alias (built-in or in the store), a model a
    job of the study makes, a local folder, or an HF id (org/name)."""
    from interp.models.loading import known_aliases

    if name in made or name in known_aliases() or Path(name).expanduser().is_dir():
        return None
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name) and not Path(name).exists():
        return None
    return (f"unknown model '{name}': not an alias of `interp models`, a local folder or an HF id "
            "(org/name); make it first (interp teach / finetune --alias) or fix the name")


def plan_study(study: Study, check_argv: ArgvCheck | None = None) -> PlannedStudy:
    """Build the job graph of `study` and refuse, with one line naming the key, anything that would
    fail later: an unknown model, a missing data file, an option a command does not take."""
    spec = study.spec
    for role, name in spec.models.items():
        problem = model_problem(name, set())
        if problem:
            raise UserError(f"{study.path}: models.{role}: {problem}")
    g = Graph(spec.study, spec.models.get("base") or next(iter(spec.models.values()), "none"))
    try:
        report_job = study.kind.build(study, g) or ""
    except UserError as e:  # e.g. a data file the spec names is missing: say which spec
        raise UserError(str(e) if str(e).startswith(str(study.path)) else f"{study.path}: {e}") from None
    for job in g.jobs.values():
        if job.func:
            continue
        argv = [g.resolved(a, job) for a in job.argv]
        problem = check_argv(argv) if check_argv else None
        if problem:
            raise UserError(f"{study.path}: job {job.name}: {problem}")
    return PlannedStudy(study, g, report_job)


def default_study_dir(name: str) -> Path:
    from interp.models.store import interp_home

    return interp_home() / "studies" / name


class RunnerBusy(UserError):
    pass


class runner_lock:
    """flock on <study dir>/.runner.lock for the runner's lifetime; refuses when another holds it."""

    def __init__(self, study_dir: Path):
        self.path = study_dir / ".runner.lock"

    def __enter__(self) -> "runner_lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 200, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise RunnerBusy(f"study folder {self.path.parent} is being run by another runner ({holder}); "
                             "wait for it to finish, or stop it") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {os.getpid()} on {os.uname().nodename} since {time.strftime('%H:%M:%S')}".encode(), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def snakemake_cmd(study_dir: Path, cores: int, dry_run: bool, engine_args: list[str], all_edges: bool = False) -> list[str]:
    """Snakemake's command line. A job is done when its manifest exists (its key carries its recipe's Merkle
    hash): the Snakefile gives a done job no inputs (so no newer file redoes it: a git checkout of a
    committed study folder, a rebuilt model's manifest), and `--rerun-triggers mtime` (which then never
    fires for a done job) turns off Snakemake's provenance triggers (code, params, input set, software):
    a change of the Snakefile's text redoes nothing. `all_edges`: every dependency, done or not (for --dag)."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(study_dir),
            "--config", f"plan={study_dir / 'plan.json'}", *(["all_edges=1"] if all_edges else []), "--cores", str(cores),
            "--rerun-incomplete", "--rerun-triggers", "mtime", "--keep-going", *(["--dry-run"] if dry_run else []), *engine_args]


@dataclass(frozen=True)
class GoneModel:
    """A done job whose model is not in this store (a new machine, a cleaned store) while a job not done
    yet needs it: the runner redoes it (same recipe, same alias) before that job."""

    name: str
    key: str
    alias: str
    needed_by: str


def gone_models(plan: dict[str, Any], study_dir: Path, within: set[str] | None = None) -> list[GoneModel]:
    """The done jobs (manifest there) that make a model missing from the store and that a not-done job
    loads (plan `loads`: its model references, not its labels or file inputs); `within`: only such jobs
    among these keys count (a slice of the plan: `slice_keys`). Done jobs downstream keep their manifests:
    what they computed stands."""
    from interp.models.store import read_meta

    jobs = plan["jobs"]
    done = {k for k in jobs if manifest_path(study_dir, k).exists()}
    missing = {k for k in done if jobs[k].get("alias") and read_meta(jobs[k]["alias"]) is None}
    gone: list[GoneModel] = []
    while True:  # to a fixed point: a redone student needs its teacher again
        more = []
        for key in sorted(missing - {g.key for g in gone}):
            waiting = [jobs[k]["name"] for k, r in jobs.items() if key in r.get("loads", r["deps"]) and k not in done
                       and (within is None or k in within)]
            if waiting:
                more.append(GoneModel(jobs[key]["name"], key, jobs[key]["alias"], waiting[0]))
        if not more:
            return gone
        gone += more
        done -= {g.key for g in more}


@dataclass(frozen=True)
class Prunable:
    """A done job's model in the store that no job of the study still needs: every job that loads it is
    done. Deleting it loses nothing the study computed; the runner rebuilds it (`gone_models`) only if a
    job added later loads it."""

    name: str
    alias: str
    size: int  # bytes of its store folder


def prunable_models(plan: dict[str, Any], study_dir: Path, jobs_like: str = "*"
                    ) -> tuple[list[Prunable], list[tuple[str, str]]]:
    """(the models that can go, [(alias, why kept)] for the other done jobs' models still in the store), over
    the jobs whose name matches `jobs_like` (fnmatch: "train-*" for the students only; other studies that
    share a teacher are not consulted). Kept: a model a job not done yet loads, a link to another entry or a
    prompt entry (deleting frees nothing), a model another store entry needs to load (`store.dependents`)."""
    from fnmatch import fnmatchcase

    from interp.models.store import dependents, entry_bytes, entry_dir, read_meta

    jobs = plan["jobs"]
    done = {k for k in jobs if manifest_path(study_dir, k).exists()}
    out: list[Prunable] = []
    kept: list[tuple[str, str]] = []
    for key in sorted(done):
        alias = jobs[key].get("alias")
        meta = read_meta(alias) if alias and fnmatchcase(jobs[key]["name"], jobs_like) else None
        if meta is None:
            continue
        waiting = [jobs[k]["name"] for k, r in jobs.items() if key in r.get("loads", r["deps"]) and k not in done]
        needed = dependents(alias)
        why = (f"{waiting[0]} (not done) loads it" if waiting else "a link to another entry"
               if entry_dir(alias).is_symlink() else "a prompt entry (no weights of its own)"
               if meta.get("kind") == "prompt" else f"{needed[0]} needs it" if needed else "")
        if why:
            kept.append((alias, why))
        else:
            out.append(Prunable(jobs[key]["name"], alias, entry_bytes(alias)))
    return out, kept


def prune(planned: PlannedStudy, study_dir: Path | None = None, dry_run: bool = False, jobs_like: str = "*"
          ) -> tuple[list[Prunable], list[tuple[str, str]]]:
    """Delete from the store the models `prunable_models` finds (none on a dry run); under the runner's lock,
    so never while this study runs."""
    from interp.models.store import remove_entry

    study_dir = (study_dir or default_study_dir(planned.name)).resolve()
    with runner_lock(study_dir):
        plan = planned.graph.plan()
        write_json_atomic(study_dir / "plan.json", plan)
        gone, kept = prunable_models(plan, study_dir, jobs_like)
        if not dry_run:
            for p in gone:
                remove_entry(p.alias)
    return gone, kept


def forget(study_dir: Path, gone: list[GoneModel]) -> None:
    """Move each gone model's manifest aside (jobs/<key>/manifest.gone-<time>.json), so Snakemake redoes it."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for g in gone:
        p = manifest_path(study_dir, g.key)
        os.replace(p, p.with_name(f"manifest.gone-{stamp}.json"))


def jobs_in_output(lines: list[str]) -> int:
    """The number of `job` instances Snakemake scheduled (its 'Job stats' table; 0 when nothing to do)."""
    n = 0
    for line in lines:
        m = re.match(r"^job\s+(\d+)\s*$", line.strip())
        if m:
            n = max(n, int(m.group(1)))
    return n


def stream(cmd: list[str], log: Path, keep_fd: int) -> tuple[int, list[str]]:
    """Run cmd, echo and log its output; (exit code, lines). `keep_fd` (the runner's lock) is inherited,
    so the lock stays held while Snakemake lives, even if this process is killed first."""
    lines = []
    with open(log, "a") as f, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                                bufsize=1, pass_fds=(keep_fd,)) as p:
        assert p.stdout is not None
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            f.write(line)
            print(line, end="", flush=True)
        code = p.wait()
    return code, lines


def slice_keys(plan: dict[str, Any], targets: Sequence[str]) -> set[str]:
    """The keys of the target jobs (`jobs/<key>/manifest.json`) and of every job they depend on, done or not."""
    keys = {Path(t).parent.name for t in targets}
    todo = list(keys)
    while todo:
        for d in plan["jobs"][todo.pop()]["deps"]:
            if d not in keys:
                keys.add(d)
                todo.append(d)
    return keys


def only_targets(plan: dict[str, Any], patterns: Sequence[str]) -> list[str]:
    """Snakemake targets (`jobs/<key>/manifest.json`, plan order) of the jobs whose name matches one of
    `patterns` (fnmatch: 'eval-student-*-n256-*'); Snakemake adds what they need. A pattern that matches
    no job is an error (a typo would otherwise run nothing, or everything)."""
    from fnmatch import fnmatchcase

    unmatched = [p for p in patterns if not any(fnmatchcase(r["name"], p) for r in plan["jobs"].values())]
    if unmatched:
        raise UserError(f"--only {', '.join(repr(p) for p in unmatched)}: no job of the study has such a name "
                        "(`interp study jobs SPEC` lists them)")
    return [f"jobs/{key}/manifest.json" for key, r in plan["jobs"].items() if any(fnmatchcase(r["name"], p) for p in patterns)]


def run_study(planned: PlannedStudy, cores: int = 1, dry_run: bool = False, study_dir: Path | None = None,
              engine_args: list[str] | None = None, only: Sequence[str] = ()) -> StudyRun:
    """Run the study's jobs not done yet (`only`: the jobs named by these patterns and what they need)."""
    study_dir = (study_dir or default_study_dir(planned.name)).resolve()
    plan = planned.graph.plan()
    targets = only_targets(plan, only) if only else []
    engine_args = [*(engine_args or []), *targets]
    with runner_lock(study_dir) as lock:
        if any((study_dir / ".snakemake" / "locks").glob("*")):
            print(f"unlocking {study_dir}: Snakemake's lock was left by a runner that is gone", flush=True)
            subprocess.run([*snakemake_cmd(study_dir, cores, False, []), "--unlock"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        write_json_atomic(study_dir / "plan.json", plan)
        (study_dir / "logs").mkdir(exist_ok=True)
        gone = gone_models(plan, study_dir, slice_keys(plan, targets) if only else None)
        for g in gone:
            print(f"{'would redo' if dry_run else 'redoing'} {g.name}: its model {g.alias} is not in this store "
                  f"and {g.needed_by} needs it", flush=True)
        if not dry_run:
            forget(study_dir, gone)
        start = time.time()
        code, lines = stream(snakemake_cmd(study_dir, cores, dry_run, list(engine_args or [])),
                             study_dir / "logs" / f"runner-{time.strftime('%Y%m%dT%H%M%S')}.log", lock.fd)
    n = jobs_in_output(lines) + (len(gone) if dry_run else 0)
    failed = [(rec["name"], study_dir / "logs" / f"{key}.log") for key, rec in plan["jobs"].items()
              if not manifest_path(study_dir, key).exists() and (study_dir / "logs" / f"{key}.log").exists()
              and (study_dir / "logs" / f"{key}.log").stat().st_mtime >= start]
    published = [] if dry_run or code else publish_report(planned, study_dir)
    return StudyRun(study_dir, n, code, failed, published)


def dag(planned: PlannedStudy, study_dir: Path | None = None) -> str:
    """Snakemake's --dag of the study (DOT text; done jobs drawn dashed)."""
    study_dir = (study_dir or default_study_dir(planned.name)).resolve()
    with runner_lock(study_dir):
        write_json_atomic(study_dir / "plan.json", planned.graph.plan())
        r = subprocess.run([*snakemake_cmd(study_dir, 1, False, [], all_edges=True), "--dag"], capture_output=True, text=True)
    if r.returncode:
        raise UserError(f"snakemake --dag failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    return r.stdout[r.stdout.index("digraph"):] if "digraph" in r.stdout else r.stdout


def publish_report(planned: PlannedStudy, study_dir: Path) -> list[Path]:
    """Copy the report job's outputs to the spec's `report:` folder, once the report job is done (a slice
    run with `--only` that left it out publishes nothing, and leaves an interim report's mark in place)."""
    dest = planned.study.report_dir
    if not planned.report_job or dest is None:
        return []
    key = planned.graph.jobs[planned.report_job].key
    if not manifest_path(study_dir, key).exists():
        return []
    src = study_dir / "jobs" / key / "out"
    (dest / INTERIM_MARK).unlink(missing_ok=True)  # the full report replaces an interim one published there
    written = []
    for p in sorted(src.rglob("*")):
        if p.is_file():
            target = dest / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
            written.append(target)
    return written


@dataclass
class Interim:
    """What `interim_report` wrote: the folder, the collect step's inputs it used, and the jobs still to
    run whose outputs the full report would read."""

    out: Path
    used: int
    left: list[str]


def interim_report(planned: PlannedStudy, study_dir: Path | None = None, out: Path | None = None) -> Interim:
    """The study's report from its done jobs alone, before the plan is complete: the collect step run on
    the inputs that done jobs made, its params cut by the kind's `done_only(params, inputs)` (e.g. the
    models whose evaluation exists), then the report step on that; written to `out` (default
    <study folder>/interim), raw tables and report together. Nothing is marked done; the full report
    is still the report job's."""
    from interp.studies.graph import OutRef

    study_dir = (study_dir or default_study_dir(planned.name)).resolve()
    done_only = getattr(planned.study.kind, "done_only", None)
    g = planned.graph
    collect = g.jobs.get("collect")
    if done_only is None or collect is None or not planned.report_job:
        raise UserError(f"kind {planned.study.spec.kind} has no interim report (no collect step that can "
                        "leave out what is not done)")
    inputs, left = {}, []
    for k, a in collect.inputs.items():
        job = g.jobs[a.job] if isinstance(a, OutRef) else None
        if job is None or manifest_path(study_dir, job.key).exists():
            inputs[k] = str(study_dir / g.resolved(a, collect)) if job else g.resolved(a, collect)
        else:
            left.append(job.name)
    params = done_only(collect.params, inputs)
    out = (out or study_dir / "interim").resolve()
    if out.is_dir() and any(out.iterdir()):
        if not (out / INTERIM_MARK).exists():
            raise UserError(f"--out {out} holds files and no {INTERIM_MARK}: not an interim report to replace "
                            "(give a new or empty folder)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    report = g.jobs[planned.report_job]
    with tempfile.TemporaryDirectory() as tmp:
        step_function(collect.func)(out=Path(tmp), params=params, **inputs)  # inputs: absolute paths or aliases
        step_function(report.func)(out=out, params=report.params, raw=tmp)
    res = Interim(out, len(inputs), sorted(set(left)))
    tables = out / "tables.md"
    if res.left and tables.exists():
        tables.write_text(f"> **Interim** (`interp study interim`, {time.strftime('%Y-%m-%d %H:%M')}): {len(res.left)} "
                          f"jobs whose outputs the full report reads are not done ({INTERIM_MARK} lists them).\n\n"
                          + tables.read_text())
    write_json_atomic(out / INTERIM_MARK, {"study": planned.name, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                           "inputs_done": res.used, "jobs_not_done": res.left})
    return res


@dataclass(frozen=True)
class Legacy:
    """What a job made before the study existed: a store alias and / or its output files
    (name in the job's out folder -> file); `run`: a cheap step that adoption runs itself."""

    model: str = ""
    files: dict[str, Path] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # files written from records kept elsewhere
    run: bool = False

    def missing(self) -> str | None:
        from interp.models.store import read_meta

        if self.model and read_meta(self.model) is None:
            return f"store entry {self.model}"
        gone = [str(p) for p in self.files.values() if not p.exists()]
        return gone[0] if gone else None


@dataclass
class Adoption:
    adopted: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)  # (job, why it was not adopted)


def adopt(planned: PlannedStudy, legacy: dict[str, Legacy], study_dir: Path | None = None) -> Adoption:
    """One-time step: give the jobs whose outputs were made before the study (old store aliases,
    committed tables) their manifests, so the runner sees them as done. A model is linked under the
    job's derived alias (`store.link_alias`), files are copied into jobs/<key>/out, and the manifest
    records `adopted_from`; steps marked `run` (cheap: subsets, collect, report) run here once their
    inputs are done. A job whose legacy outputs are missing, or whose inputs are not done, is left to
    the runner."""
    from interp.models.store import link_alias
    from interp.studies.execute import output_digests, run_job

    study_dir = (study_dir or default_study_dir(planned.name)).resolve()
    g, res = planned.graph, Adoption()
    plan = g.plan()
    with runner_lock(study_dir):
        write_json_atomic(study_dir / "plan.json", plan)
        done = {n for n, j in g.jobs.items() if manifest_path(study_dir, j.key).exists()}
        for name, job in g.jobs.items():
            if name in done:
                continue
            leg = legacy.get(name)
            waiting = [d for d in job.deps() if d not in done]
            if leg is None or leg.missing() or waiting:
                why = ("no output made before the study" if leg is None else
                       f"missing: {leg.missing()}" if leg.missing() else f"waits for {waiting[0]}")
                res.left.append((name, why))
                continue
            out = study_dir / "jobs" / job.key / "out"
            if leg.run:
                cwd = Path.cwd()
                os.chdir(study_dir)
                try:
                    manifest = run_job(plan, job.key, study_dir)
                finally:
                    os.chdir(cwd)
                res.ran.append(name)
            else:
                out.mkdir(parents=True, exist_ok=True)
                for dest, src in leg.files.items():
                    shutil.copyfile(src, out / dest)
                for dest, text in leg.texts.items():
                    (out / dest).write_text(text)
                if job.alias:
                    link_alias(job.alias, leg.model)
                manifest = {"key": job.key, "name": name, "recipe_hash": job.hash, "recipe": plan["jobs"][job.key]["recipe"],
                            "model": {"alias": job.alias, "linked_to": leg.model} if job.alias else None,
                            "adopted_from": {"model": leg.model or None, "files": {k: str(v) for k, v in leg.files.items()}},
                            "outputs": output_digests(out), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                res.adopted.append(name)
            write_json_atomic(manifest_path(study_dir, job.key), manifest)
            done.add(name)
    return res


def job_table(planned: PlannedStudy, study_dir: Path | None = None) -> Iterator[dict[str, object]]:
    """One row per job: name, key, alias, done (manifest there), deps."""
    study_dir = (study_dir or default_study_dir(planned.name)).resolve()
    for job in planned.graph.jobs.values():
        yield {"job": job.name, "hash": job.hash[:10], "model": job.alias or "-",
               "done": "yes" if manifest_path(study_dir, job.key).exists() else "no", "after": len(job.deps())}
