"""A study's job graph: jobs, the references between them, recipe hashes and the plan file.

    g = Graph(study="organism", base=base)       # base: the spec's models.base
    teach = g.command("teacher-owl", ["teach", "--method", "prompt", "--trait", "owl", "--base", base,
                                      "--alias", SELF], model="teacher-owl")
    gen = g.command("pool-owl", ["gen-numbers", "--model", g.model(teach), "--n", "600"])
    g.step("subset-owl-s0", "interp.studies.steps:draw_subset", {"n": 256, "seed": 0},
           inputs={"pool": g.out(gen, "numbers.jsonl")})
    plan = g.plan()          # {key: job record}, written to <study dir>/plan.json

A job's recipe is everything that decides its output: its command line (or step function and
parameters), with every reference replaced by what it stands for: another job's recipe hash, a data
file's sha256. So `recipe_hash(job) = sha256(canonical JSON of that recipe)` is a Merkle hash:
changing one parameter changes the hash of that job and of every job downstream of it, and of
nothing else. A job's key (its folder and Snakemake target, `jobs/<key>/manifest.json`) and the
store alias of the model it makes both carry the hash, so a recipe that changed is a new target
and a model of another base or recipe is a new alias: nothing is reused silently.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from interp.errors import UserError

HASH_CHARS = 10  # of the recipe hash in a job key; the model alias carries the first 8


@dataclass(frozen=True)
class OutRef:
    """A file (or folder) in the run folder of another job: `jobs/<key>/out/<path>`."""

    job: str
    path: str = ""


@dataclass(frozen=True)
class ModelRef:
    """The store alias of the model another job makes. `loads`: the job reading it loads the model (False:
    it only names it, e.g. a label in a table; a runner on a new store need not rebuild the model for it)."""

    job: str
    loads: bool = True


@dataclass(frozen=True)
class FileRef:
    """A data file outside the study (hashed by content; passed as an absolute path)."""

    path: Path


@dataclass(frozen=True)
class Joined:
    """Several references as one argument: `--models A,B`."""

    parts: tuple["Arg", ...]
    sep: str = ","


@dataclass(frozen=True)
class SelfAlias:
    """The alias of the model this job makes (not part of its own recipe)."""


SELF = SelfAlias()
Arg = Union[str, OutRef, ModelRef, FileRef, SelfAlias, Joined]


@dataclass
class Job:
    """One node: an `interp` command (`argv`) or a Python step (`func`, `params`, `inputs`).

    `model`: the role of the model it makes (the alias is derived from study, family, role, hash);
    `family`: the model it trains or builds on when that is not the study's base (its slug starts the alias:
    `<study>-<slug of that model>-student-...`, where a student of the base has the base's slug);
    `resources`: Snakemake resources (threads, mem_mb, runtime in minutes, gpu)."""

    name: str
    argv: list[Arg] = field(default_factory=list)
    func: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Arg] = field(default_factory=dict)
    model: str = ""
    family: str = ""
    resources: dict[str, int] = field(default_factory=dict)
    hash: str = ""
    key: str = ""
    alias: str = ""

    def refs(self) -> list[Arg]:
        flat: list[Arg] = []
        for a in [*self.argv, *self.inputs.values()]:
            flat.extend(a.parts if isinstance(a, Joined) else [a])
        return flat

    def deps(self) -> list[str]:
        """Names of the jobs this one reads from, in order of first use."""
        names = [a.job for a in self.refs() if isinstance(a, (OutRef, ModelRef))]
        return list(dict.fromkeys(names))


def slug(name: str) -> str:
    """A model name as an alias part: 'Org/Model-1B-Instruct' -> 'model-1b-instruct'."""
    tail = name.rstrip("/").split("/")[-1].lower()
    return re.sub(r"[^a-z0-9.]+", "-", tail).strip("-.") or "model"


def file_digest(path: Path) -> str:
    from interp.models.store import sha256_file

    return sha256_file(path)


class Graph:
    """Jobs added in dependency order (a job may only refer to jobs added before it)."""

    def __init__(self, study: str, base: str):
        self.study, self.base = study, base
        self.jobs: dict[str, Job] = {}
        self._digests: dict[Path, str] = {}

    # -- references
    def out(self, job: Job, path: str = "") -> OutRef:
        return OutRef(job.name, path)

    def model(self, job: Job) -> ModelRef:
        if not job.model:
            raise ValueError(f"job {job.name} makes no model")
        return ModelRef(job.name)

    def label(self, model: "Arg") -> "Arg":
        """`model` as a name in a table: a ModelRef that does not load (a runner on a new store need not
        rebuild the model for a label); a base model's name stays as it is."""
        return ModelRef(model.job, loads=False) if isinstance(model, ModelRef) else model

    def file(self, path: Path | str) -> FileRef:
        return FileRef(Path(path).resolve())

    # -- nodes
    def command(self, name: str, argv: list[Arg], model: str = "", family: str = "", **resources: int) -> Job:
        return self._add(Job(name, argv=list(argv), model=model, family=family, resources=resources))

    def step(self, name: str, func: str, params: dict[str, Any] | None = None, inputs: dict[str, Arg] | None = None,
             **resources: int) -> Job:
        return self._add(Job(name, func=func, params=dict(params or {}), inputs=dict(inputs or {}),
                             resources=resources))

    def _add(self, job: Job) -> Job:
        if job.name in self.jobs:
            raise ValueError(f"two jobs named {job.name}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=-]*", job.name):
            raise ValueError(f"job name {job.name!r}: letters, digits, '-', '_', '.', '='")
        for d in job.deps():
            if d not in self.jobs:
                raise ValueError(f"job {job.name} refers to {d}, which is not (yet) in the graph")
        job.hash = hashlib.sha256(canonical(self.recipe(job)).encode()).hexdigest()
        job.key = f"{job.name}-{job.hash[:HASH_CHARS]}"
        if job.model:
            job.alias = f"{self.study}-{slug(job.family or self.base)}-{job.model}-{job.hash[:8]}"
        self.jobs[job.name] = job
        return job

    # -- recipes
    def _digest(self, path: Path) -> str:
        if path not in self._digests:
            if not path.is_file():
                raise UserError(f"data file {path} does not exist (named by the study spec)")
            self._digests[path] = file_digest(path)
        return self._digests[path]

    def _hashed(self, a: Arg) -> str:
        if isinstance(a, str):
            return a
        if isinstance(a, Joined):
            return a.sep.join(self._hashed(p) for p in a.parts)
        if isinstance(a, OutRef):
            return f"<out:{self.jobs[a.job].hash}>/{a.path}"
        if isinstance(a, ModelRef):
            return f"<model:{self.jobs[a.job].hash}>"
        if isinstance(a, FileRef):
            return f"<file:sha256:{self._digest(a.path)}>"
        return "<self>"

    def recipe(self, job: Job) -> dict[str, Any]:
        """What decides the job's output, references resolved to hashes (no paths, no aliases)."""
        if job.func:
            return {"func": job.func, "params": job.params,
                    "inputs": {k: self._hashed(v) for k, v in sorted(job.inputs.items())}}
        return {"argv": [self._hashed(a) for a in job.argv]}

    def resolved(self, a: Arg, job: Job) -> str:
        """The argument as the job runs it (cwd = the study folder)."""
        if isinstance(a, str):
            return a
        if isinstance(a, Joined):
            return a.sep.join(self.resolved(p, job) for p in a.parts)
        if isinstance(a, OutRef):
            return str(Path("jobs", self.jobs[a.job].key, "out", a.path)) if a.path else \
                str(Path("jobs", self.jobs[a.job].key, "out"))
        if isinstance(a, ModelRef):
            return self.jobs[a.job].alias
        if isinstance(a, FileRef):
            return str(a.path)
        return job.alias

    def plan(self) -> dict[str, Any]:
        """The plan file: every job by key, with its resolved command and its recipe."""
        jobs = {}
        for job in self.jobs.values():
            rec: dict[str, Any] = {
                "name": job.name, "hash": job.hash, "recipe": self.recipe(job),
                "deps": [self.jobs[d].key for d in job.deps()], "alias": job.alias,
                "loads": list(dict.fromkeys(self.jobs[a.job].key for a in job.refs() if isinstance(a, ModelRef) and a.loads)),
                "resources": {"threads": 1, **job.resources},
            }
            if job.func:
                rec.update(func=job.func, params=job.params,
                           inputs={k: self.resolved(v, job) for k, v in job.inputs.items()})
            else:
                rec["argv"] = [self.resolved(a, job) for a in job.argv]
            jobs[job.key] = rec
        return {"study": self.study, "base": self.base, "python": sys.executable, "jobs": jobs}


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
