"""Study specs: the YAML file that names everything a researcher changes (models, device, dtype,
recipes, arms, seeds, doses), validated before any job runs.

    study: organism                 # part of every made model's alias and of the study folder
    kind: organism                  # the job graph (interp/studies/kinds/<kind>.py)
    models: {base: BASE}            # the roles its kind needs; aliases, local folders or HF ids
    device: cpu                     # passed to every command that loads a model
    dtype: fp32
    resources: {distill: {mem_mb: 12000, runtime: 120, gpu: 1}}   # per command (Snakemake resources)
    report: ../../reports/organism  # where the report job publishes its tables (optional)
    recipe: {...}                   # the kind's own keys (its `Recipe` model)

Relative paths in a spec are relative to the spec file's folder. Unknown keys, a wrong type, an
unknown kind are refused with one line naming the key.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from interp.choices import Dtype
from interp.errors import UserError

KINDS = ("organism", "dissection", "social_bias", "poison", "ghost_logits", "shd_transfer", "seed_system", "subliminal", "seed_probes", "steering",
         "steering_students")


class Strict(BaseModel):
    """A spec block: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    threads: int = Field(1, ge=1)
    mem_mb: int | None = Field(None, ge=1)
    runtime: int | None = Field(None, ge=1, description="minutes")
    gpu: int = Field(0, ge=0)


class StudySpec(Strict):
    study: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    kind: str
    description: str = ""
    models: dict[str, str]
    device: str = "cpu"
    dtype: Dtype = "fp32"
    resources: dict[str, Resources] = {}
    report: str | None = None
    recipe: dict[str, Any] = {}


def shared_data() -> Path:
    """The project's reference data folder: $INTERP_SHARED_DATA, else /work/shared/data."""
    return Path(os.environ.get("INTERP_SHARED_DATA", "/work/shared/data"))


@dataclass(frozen=True)
class Study:
    """A validated spec: its common part, the kind's recipe, the kind's module and the spec's folder."""

    spec: StudySpec
    recipe: Any
    kind: ModuleType
    path: Path

    def model(self, role: str) -> str:
        return self.spec.models[role]

    def loading(self) -> list[str]:
        """The model-loading options every command that loads a model gets."""
        return ["--device", self.spec.device, "--dtype", self.spec.dtype]

    def resources(self, command: str) -> dict[str, int]:
        r = self.spec.resources.get(command)
        return {k: v for k, v in r.model_dump().items() if v} if r else {}

    def data(self, path: str) -> Path:
        """A path of the spec: relative to its folder; `${INTERP_SHARED_DATA}` is the project's reference
        data (default /work/shared/data: the benchmarks' and Dolly's files, with their origins)."""
        expanded = os.path.expandvars(path.replace("${INTERP_SHARED_DATA}", str(shared_data())))
        return (self.path.parent / expanded).resolve()

    @property
    def report_dir(self) -> Path | None:
        return self.data(self.spec.report) if self.spec.report else None


def validation_line(err: ValidationError, prefix: str = "") -> str:
    """The first error as one line: `unknown key 'recipe.arms.foo'` / `recipe.seeds: Input should be ...`."""
    e = err.errors()[0]
    loc = ".".join(str(x) for x in (prefix, *e["loc"]) if x != "")
    if e["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    if e["type"] == "missing":
        return f"missing key '{loc}'"
    return f"{loc}: {e['msg']}" + (f" (got {e['input']!r})" if not isinstance(e.get("input"), (dict, list)) else "")


def load_study(path: Path) -> Study:
    """Read and validate a spec file (one-line UserError on any problem)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"study spec {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a spec is a mapping of keys (study, kind, models, recipe, ...)")
    try:
        spec = StudySpec(**raw)
    except ValidationError as e:
        raise UserError(f"{path}: {validation_line(e)}") from None
    if spec.kind not in KINDS:
        raise UserError(f"{path}: kind '{spec.kind}' is not one of {', '.join(KINDS)}")
    kind = importlib.import_module(f"interp.studies.kinds.{spec.kind}")
    try:
        recipe = kind.Recipe(**spec.recipe)
    except ValidationError as e:
        raise UserError(f"{path}: {validation_line(e, 'recipe')}") from None
    missing = [r for r in kind.ROLES if r not in spec.models]
    if missing:
        raise UserError(f"{path}: missing key 'models.{missing[0]}' (kind {spec.kind} needs models: "
                        f"{', '.join(kind.ROLES)})")
    pattern = getattr(kind, "ROLE_PATTERN", None)  # a kind may take any number of roles of one form
    extra = [r for r in spec.models if r not in kind.ROLES and not (pattern and re.fullmatch(pattern, r))]
    if extra:
        raise UserError(f"{path}: unknown key 'models.{extra[0]}' (kind {spec.kind} takes models: "
                        f"{', '.join(kind.ROLES)}" + (f" and roles matching {pattern}" if pattern else "") + ")")
    return Study(spec, recipe, kind, path.resolve())

