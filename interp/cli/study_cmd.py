"""`interp study run|jobs|prune|interim|report`: run a study spec with Snakemake, list its jobs, rebuild its report.

    interp study run studies/organism/tiny.yaml --cores 2 --dry-run     # ... "N jobs to run"
    interp study run studies/organism/tiny.yaml --cores 2
    interp study run SPEC --executor slurm --jobs 8                      # any other option goes to Snakemake
    interp study run SPEC --only 'teacher-*' --only 'eval-teacher-*'     # those jobs and what they need
    interp study jobs SPEC                                               # each job, its model alias, done?
    interp study prune SPEC --jobs 'train-*' --dry-run                   # the done students nothing needs now
    interp study interim SPEC --workdir FOLDER                           # the report from the done jobs alone
    interp study report SPEC --raw reports/organism --out runs/organism-report
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import typer

from interp.cli.app import app
from interp.cli.common import console, err_console, fail, print_table
from interp.cli.params import InArg, Int

study_app = typer.Typer(help="Studies: a spec file plus a graph of jobs, run by Snakemake (docs/studies.md).",
                        no_args_is_help=True)
app.add_typer(study_app, name="study")

SPEC = InArg("study spec (studies/<study>/<name>.yaml)")
WORKDIR = typer.Option(None, "--workdir", help="study folder (default $INTERP_HOME/studies/<study>)")


def check_argv(argv: list[str]) -> str | None:
    """Why `interp ARGV` would be refused for its option names or a choice's value, or None: an unknown
    command, an option the command does not take, a value outside an option's choices. (Other values are
    checked when the job runs; files made by earlier jobs do not exist yet.)"""
    cmd = _commands().get(argv[0])
    if cmd is None or hasattr(cmd, "commands"):
        return f"'{argv[0]}' is not an interp command"
    known = {o: p for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for a, value in zip(argv[1:], [*argv[2:], None]):
        name = a.split("=", 1)[0]
        if name.startswith("-") and not _is_number(name) and name not in known:
            return f"`interp {argv[0]}` does not take the option {name}"
        allowed = _choices(known[name]) if name in known else None
        if allowed and isinstance(value, str) and value not in allowed:
            return f"`interp {argv[0]}` {name}: {value!r} is not one of {', '.join(allowed)}"
    return None


def _choices(param: Any) -> tuple[str, ...] | None:
    """The values a Literal-typed option takes (Optional[Literal[...]] too), else None."""
    from typing import Literal, Union, get_args, get_origin

    ann = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if get_origin(ann) is Union:
        ann = next((a for a in get_args(ann) if a is not type(None)), None)
    return tuple(str(a) for a in get_args(ann)) if get_origin(ann) is Literal else None


@functools.lru_cache(maxsize=1)
def _commands() -> dict[str, Any]:
    """The click commands of the app by name (built once: a plan checks hundreds of jobs)."""
    from interp.cli import commands  # noqa: F401  (registers every command)

    return dict(getattr(typer.main.get_command(app), "commands", {}))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _planned(spec: Path):  # -> PlannedStudy
    from interp.studies.runner import plan_study
    from interp.studies.spec import load_study

    return plan_study(load_study(spec), check_argv)


@study_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def study_run(
    ctx: typer.Context,
    spec: Path = SPEC,
    cores: int = Int(1, "--cores", help="CPU cores Snakemake may use at once", ge=1),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="list the jobs to run, run none"),
    workdir: Path | None = WORKDIR,
    only: list[str] = typer.Option([], "--only", help="run only the jobs whose name matches this pattern (fnmatch, "
                                   "repeatable, e.g. 'eval-student-*-n256-*') and what they need"),
) -> None:
    """Check the spec, then run its jobs with Snakemake (resumes: a job with its manifest is done).
    Options it does not know go to Snakemake (e.g. --executor slurm --jobs 8)."""
    from interp.studies.runner import run_study

    planned = _planned(spec)
    res = run_study(planned, cores=cores, dry_run=dry_run, study_dir=workdir, engine_args=list(ctx.args), only=only)
    for name, log in res.failed:
        console.print(f"[red]job {name} failed[/red]; its log: {log}", soft_wrap=True)
    for p in res.published:
        console.print(f"report: {p}", soft_wrap=True)
    console.print(f"{res.jobs_to_run} jobs to run" if dry_run else f"study folder: {res.study_dir}", soft_wrap=True)
    if res.returncode:
        err_console.print(f"error: Snakemake exited with {res.returncode}"
                          + (f"; {len(res.failed)} job(s) failed (logs above)" if res.failed else ""))
        raise typer.Exit(1)


@study_app.command("jobs")
def study_jobs(spec: Path = SPEC, workdir: Path | None = WORKDIR) -> None:
    """Each job of the spec: its key (name + recipe hash), the model it makes, done or not."""
    from interp.studies.runner import job_table

    rows = list(job_table(_planned(spec), workdir))
    print_table(f"{spec}: {len(rows)} jobs, {sum(r['done'] == 'yes' for r in rows)} done",
                ["job", "hash", "model it makes", "done", "inputs from"], [tuple(str(v) for v in r.values()) for r in rows])


@study_app.command("prune")
def study_prune(spec: Path = SPEC, workdir: Path | None = WORKDIR,
                jobs: str = typer.Option("*", "--jobs", help="only the models of jobs whose name matches this "
                                         "pattern (fnmatch), e.g. 'train-*' for the students"),
                dry_run: bool = typer.Option(False, "--dry-run", "-n", help="list what would go, delete nothing")) -> None:
    """Free disk: delete from the store the models of done jobs that no job of the study still needs (every
    job that loads it is done). Results stand; a job added later that loads one rebuilds it."""
    from interp.studies.runner import prune

    gone, kept = prune(_planned(spec), workdir, dry_run, jobs)
    for p in gone:
        console.print(f"{'would delete' if dry_run else 'deleted'} {p.alias} ({p.size / 2**30:.2f} GiB; made by {p.name})",
                      soft_wrap=True)
    for alias, why in kept:
        console.print(f"kept {alias}: {why}", soft_wrap=True)
    console.print(f"{'would free' if dry_run else 'freed'} {sum(p.size for p in gone) / 2**30:.2f} GiB "
                  f"({len(gone)} models); {len(kept)} kept", soft_wrap=True)


@study_app.command("dag")
def study_dag(spec: Path = SPEC, out: Path = typer.Option(Path("dag.dot"), "--out", "-o", help="DOT file to write"),
              workdir: Path | None = WORKDIR) -> None:
    """The job graph as Snakemake draws it (DOT; `dot -Tpng dag.dot > dag.png` makes the picture)."""
    from interp.studies.runner import dag

    out.write_text(dag(_planned(spec), workdir))
    console.print(f"wrote {out}", soft_wrap=True)


@study_app.command("adopt")
def study_adopt(
    spec: Path = SPEC,
    raw: Path = typer.Option(..., "--from", help="the raw folder the study wrote before it was a study "
                             "(e.g. reports/organism); models come from the store by their old aliases"),
    workdir: Path | None = WORKDIR,
) -> None:
    """One-time step: mark done the jobs whose outputs exist from before the study (old store aliases,
    committed tables), so a dry run lists only the work that is really left."""
    from interp.studies.runner import adopt

    planned = _planned(spec)
    legacy = getattr(planned.study.kind, "legacy", None)
    if legacy is None:
        fail(f"kind {planned.study.spec.kind} has no record of what it made before it was a study")
    if not raw.is_dir():
        fail(f"--from {raw} is not a folder")
    res = adopt(planned, legacy(planned.study, planned.graph, raw.resolve()), workdir)
    reasons: dict[str, int] = {}
    for _, why in res.left:
        key = why.split(":")[0] if why.startswith("missing") else why.split(" ")[0]
        reasons[key] = reasons.get(key, 0) + 1
    console.print(f"adopted {len(res.adopted)} jobs, ran {len(res.ran)} cheap steps; {len(res.left)} left to run"
                  + (f" ({', '.join(f'{n} {k}' for k, n in reasons.items())})" if reasons else ""), soft_wrap=True)
    for name, why in res.left[:10]:
        console.print(f"  {name}: {why}", soft_wrap=True)


@study_app.command("interim")
def study_interim(spec: Path = SPEC, workdir: Path | None = WORKDIR,
                  out: Path | None = typer.Option(None, "--out", "-o", help="folder to write the interim report "
                                                  "into (default <study folder>/interim)")) -> None:
    """The study's report from its done jobs alone, while others are still to run (a study run across
    sessions): the collect and report steps on what exists, with the jobs still missing listed."""
    from interp.studies.runner import interim_report

    res = interim_report(_planned(spec), workdir, out)
    console.print(f"interim report from {res.used} inputs of done jobs: {res.out}", soft_wrap=True)
    if res.left:
        shown = ", ".join(res.left[:8]) + (f", ... ({len(res.left)} in all)" if len(res.left) > 8 else "")
        console.print(f"not yet done, left out: {shown}", soft_wrap=True)


@study_app.command("report")
def study_report(
    spec: Path = SPEC,
    raw: Path = typer.Option(..., "--raw", help="folder of the raw tables (e.g. the committed reports/<study>)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="folder to write the report tables into "
                                    "(default runs/study-report/<study>)"),
) -> None:
    """Rebuild the study's report tables from its raw tables alone (no model is loaded)."""
    from interp.studies.spec import load_study

    study = load_study(spec)
    if not raw.is_dir():
        fail(f"--raw {raw} is not a folder")
    out = out or Path("runs", "study-report", study.spec.study)
    out.mkdir(parents=True, exist_ok=True)
    study.kind.report(raw, out, study.recipe)
    console.print(f"wrote {out}")
