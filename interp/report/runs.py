"""Run directories: refuse to clobber, stage every output, publish only on success, record a manifest.

    run = RunDir.prepare(out, command="reverse-link", force=False)   # checks only; writes nothing
    ...compute...
    run.write_csv("reverse_link.csv", df)           # into a hidden staging folder beside OUT
    run.write_summary(inputs={...}, model=lm, seed=0, figures={...})
    run.publish()                                   # moves the staged files into OUT

A run that fails or is interrupted (Ctrl-C) leaves OUT as it was: `interp.cli.main` publishes every
prepared run when the command returns, and when it fails discards their staging folders and removes
the files and folders the run wrote into OUT directly, e.g. training checkpoints (`finish_runs`). A
process killed outright (SIGKILL, out of memory) cannot clean up: its checkpoints stay for --resume.
Written files get the permissions the umask gives (0666 less the umask), not mkstemp's 0600. With --force and
an earlier run in OUT (it has a summary.json), publishing removes the earlier run's files that are
still as they were when this run was prepared and that this run did not write, so no stale file
stays beside the new ones; what this run wrote into OUT directly (training checkpoints, for
--resume) is kept. Files in a folder that holds no earlier run are the user's: only names this run
writes are replaced. A RunDir built directly (`RunDir(path, command)`, e.g. `interp report` adding report.html to
an existing run) writes in place.

`summary.json` = {command, created, elapsed_s, inputs, seed, model (identity + sha256), versions, figures}.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.errors import UserError

VERSIONED = ("interp", "torch", "transformers", "transformer-lens", "nnsight", "peft", "numpy", "pandas")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def default_out(command: str) -> Path:
    """runs/<command>/<YYYYmmdd-HHMMSS>, with -2, -3 ... when two runs start within one second."""
    base = Path("runs") / command / time.strftime("%Y%m%d-%H%M%S")
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


@dataclass
class RunDir:
    path: Path
    command: str
    started: float = field(default_factory=time.perf_counter)
    staged: bool = False  # prepared runs write into `staging` and publish on success
    replace: bool = False  # publish removes OUT's earlier files (--force)
    before: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # OUT's files when prepared
    before_dirs: set[str] = field(default_factory=set)  # OUT's folders when prepared (OUT itself is ".")
    staging: Path | None = None

    @classmethod
    def prepare(cls, out: str | Path | None, command: str, force: bool = False, replace: bool | None = None) -> "RunDir":
        """Check `out` can be written (UserError if it is a non-empty folder and not `force`).

        Nothing is created until the first write, and that goes into a staging folder, so a failed
        run leaves nothing behind. `replace` (default: `force`): on publish, remove OUT's files that
        predate this run (pass False for --resume, whose earlier files are this run's own).
        """
        path = Path(out) if out is not None else default_out(command)
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise UserError(f"--out {path} is not empty; pass --force to overwrite its files")
        run = cls(path, command, staged=True, replace=force if replace is None else replace,
                  before=_file_states(path), before_dirs=_dirs(path))
        _PENDING.append(run)
        return run

    def _folder(self) -> Path:
        """Where writes go: the staging folder of a prepared run (made on first use), else OUT."""
        if not self.staged:
            self.path.mkdir(parents=True, exist_ok=True)
            return self.path
        if self.staging is None:
            parent = self.path.absolute().parent
            parent.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.path.name}.staging-"))
        return self.staging

    @property
    def files_at(self) -> Path:
        """Where the files written so far are now (the staging folder until publish)."""
        return self.staging if self.staging is not None else self.path

    def _atomic_write(self, name: str, data: bytes) -> Path:
        """Write `name` atomically (temp file + rename); only on the main process under a launcher.
        Returns the path the file will have in OUT."""
        from interp.runtime import is_main_process

        target = self.path / name
        if not is_main_process():
            return target
        folder = self._folder()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, umask_mode())  # mkstemp makes 0600; results are for the lab to read
            os.replace(tmp, folder / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def publish(self) -> None:
        """Move the staged files into OUT (each by rename); with `replace`, first remove OUT's files
        that are unchanged since `prepare` and that this run did not write, then empty folders."""
        from interp.runtime import is_main_process

        _forget(self)
        if not self.staged or not is_main_process():
            return
        staged = sorted(p.name for p in self.staging.iterdir()) if self.staging is not None else []
        if self.replace and "summary.json" in self.before:  # an earlier run's folder
            now = _file_states(self.path)
            for rel, state in self.before.items():
                if now.get(rel) == state and rel not in staged:
                    (self.path / rel).unlink()
            for d in sorted((p for p in self.path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(d.iterdir()):
                    d.rmdir()
        if self.staging is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            for name in staged:
                os.replace(self.staging / name, self.path / name)
            self._drop_staging()

    def _drop_staging(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def discard(self) -> None:
        """A failed or interrupted run: drop the staged files, and remove what the run wrote into OUT
        directly (e.g. training checkpoints) and the folders it made, so OUT is as it was. Files that
        were in OUT when the run was prepared stay, even if the run changed them."""
        from interp.runtime import is_main_process

        _forget(self)
        self._drop_staging()
        if not self.staged or not is_main_process() or not self.path.is_dir():
            return
        for rel in _file_states(self.path).keys() - self.before.keys():
            (self.path / rel).unlink(missing_ok=True)
        for rel in sorted(_dirs(self.path) - self.before_dirs, key=lambda r: -len(Path(r).parts)):
            d = self.path / rel
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.publish() if exc_type is None else self.discard()

    def write_text(self, name: str, text: str) -> Path:
        return self._atomic_write(name, text.encode())

    def write_csv(self, name: str, df: pd.DataFrame) -> Path:
        return self._atomic_write(name, df.to_csv(index=False).encode())

    def write_json(self, name: str, obj: Any) -> Path:
        return self._atomic_write(name, (json.dumps(to_jsonable(obj), indent=2) + "\n").encode())

    def write_bytes(self, name: str, data: bytes) -> Path:
        return self._atomic_write(name, data)

    def write_summary(self, *, inputs: dict[str, Any], figures: dict[str, Any], model: Any = None,
                      models: dict[str, Any] | None = None, seed: int | None = None) -> Path:
        summary = {
            "command": self.command,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "elapsed_s": round(time.perf_counter() - self.started, 3),
            "inputs": inputs,
            "seed": seed,
            "model": model.identity() if model is not None else None,
            "models": {k: v.identity() for k, v in (models or {}).items()} or None,
            "versions": package_versions(),
            "figures": figures,
        }
        return self.write_json("summary.json", summary)


_PENDING: list[RunDir] = []  # prepared, not yet published or discarded


def _forget(run: RunDir) -> None:
    """Drop `run` from the pending list (by identity: two RunDirs of one folder compare equal)."""
    _PENDING[:] = [r for r in _PENDING if r is not run]


def finish_runs(success: bool) -> None:
    """Publish (success) or discard every prepared run of this process (the CLI calls it once)."""
    for run in list(_PENDING):
        run.publish() if success else run.discard()


def umask_mode(mode: int = 0o666) -> int:
    """`mode` less the process umask: the permissions `open()` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def _dirs(path: Path) -> set[str]:
    """Relative paths of `path` and every folder under it ("." for `path`; empty if it does not exist)."""
    if not path.is_dir():
        return set()
    return {"."} | {str(p.relative_to(path)) for p in path.rglob("*") if p.is_dir() and not p.is_symlink()}


def _file_states(path: Path) -> dict[str, tuple[int, int, int]]:
    """{relative file path: (size, mtime_ns, inode)} of every file under `path` ({} if none)."""
    if not path.is_dir():
        return {}
    out = {}
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def to_jsonable(obj: Any) -> Any:
    """Convert numpy / pandas / dataclass values into plain JSON (NaN and inf become null)."""
    if hasattr(obj, "to_dict") and not isinstance(obj, (pd.DataFrame, pd.Series)):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (pd.DataFrame,)):
        return to_jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj
