"""Run one job of a plan and write its manifest: what the Snakefile's rule calls.

    python -m interp.studies.execute <study dir>/plan.json <job key>

A command job runs `python -m interp ARGV --out jobs/<key>/out --force` in the study folder; a step
job calls its function `func(out, params, **inputs)`. Only when that succeeds (and the model it
makes is in the store) is `jobs/<key>/manifest.json` written, atomically (a temporary file renamed),
so a killed or failed job never leaves a manifest: it is not done, and the next run redoes it.
The manifest records the recipe (hash and resolved form), every output file's sha256, the model's
alias, the seconds it took, the host and, under SLURM, the job id.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable


def manifest_path(study_dir: Path, key: str) -> Path:
    return study_dir / "jobs" / key / "manifest.json"


def read_manifest(study_dir: Path, key: str) -> dict[str, Any] | None:
    p = manifest_path(study_dir, key)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def job_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the job that wrote `path` (its out folder or a file in it: jobs/<key>/out/...);
    {} when there is none. Steps read the seconds and argv of the jobs they collect from it."""
    parts = Path(path).parts
    if "jobs" not in parts or len(parts) < parts.index("jobs") + 3:
        return {}
    p = Path(*parts[: parts.index("jobs") + 2], "manifest.json")
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def job_seconds(path: str | Path) -> float | None:
    return job_manifest(path).get("seconds")


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def output_digests(out: Path) -> dict[str, str]:
    from interp.models.store import sha256_file

    return {str(p.relative_to(out)): sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()}


def step_function(func: str) -> Callable[..., None]:
    """A step's function from its plan name, 'package.module:function'."""
    module, name = func.split(":")
    return getattr(importlib.import_module(module), name)


def run_job(plan: dict[str, Any], key: str, study_dir: Path) -> dict[str, Any]:
    """Run the job; its manifest (not yet written)."""
    job = plan["jobs"][key]
    out = study_dir / "jobs" / key / "out"
    if out.exists():
        shutil.rmtree(out)  # what a killed attempt left
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    if job.get("func"):
        shown = json.dumps(job["params"], sort_keys=True)
        print(f"step {job['func']} {shown if len(shown) < 300 else shown[:300] + ' ...'}", flush=True)
        step_function(job["func"])(out=out, params=job["params"], **job["inputs"])
    else:
        argv = [*job["argv"], "--out", str(out.relative_to(study_dir)), "--force"]
        print("$ interp " + " ".join(argv), flush=True)
        code = subprocess.run([sys.executable, "-m", "interp", *argv], cwd=study_dir).returncode
        if code:
            raise SystemExit(code)
    model = None
    if job["alias"]:
        from interp.models.store import read_meta

        meta = read_meta(job["alias"])
        if meta is None:
            raise SystemExit(f"job {key} finished but its model {job['alias']} is not in the store")
        model = {"alias": job["alias"], "created": meta.get("created"), "kind": meta.get("kind")}
    return {"key": key, "name": job["name"], "recipe_hash": job["hash"], "recipe": job["recipe"],
            **({"func": job["func"], "params": job["params"], "inputs": job["inputs"]} if job.get("func")
               else {"argv": job["argv"]}),
            "model": model, "outputs": output_digests(out), "seconds": round(time.perf_counter() - t0, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def main(argv: list[str]) -> None:
    """Run the job under an exclusive flock on jobs/<key>/.lock: a second process asked to build the
    same job while the first still runs (an orphan of a killed runner, a second runner on another
    node) fails at once instead of building it twice."""
    import fcntl

    plan_file, key = Path(argv[0]).resolve(), argv[1]
    study_dir = plan_file.parent
    os.chdir(study_dir)
    plan = json.loads(plan_file.read_text())
    lock = study_dir / "jobs" / key / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise SystemExit(f"job {key} is being built by another process ({f.read().strip()}); not building it twice")
        f.truncate(0)
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        manifest = run_job(plan, key, study_dir)
        write_json_atomic(manifest_path(study_dir, key), manifest)
    print(f"job {key} done in {manifest['seconds']} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
