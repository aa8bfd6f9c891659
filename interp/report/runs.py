"""Run directories: refuse to clobber, write atomically, record a manifest in summary.json.

    run = RunDir.prepare(out, command="reverse-link", force=False)   # checks only; writes nothing
    ...compute...
    run.write_csv("reverse_link.csv", df)
    run.write_summary(inputs={...}, model=lm, seed=0, figures={...})

`summary.json` = {command, created, elapsed_s, inputs, seed, model (identity + sha256), versions, figures}.
"""

from __future__ import annotations

import json
import math
import os
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
    return Path("runs") / command / time.strftime("%Y%m%d-%H%M%S")


@dataclass
class RunDir:
    path: Path
    command: str
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def prepare(cls, out: str | Path | None, command: str, force: bool = False) -> "RunDir":
        """Check `out` can be written (UserError if it is a non-empty folder and not `force`).

        Nothing is created until the first write, so a failed run leaves nothing behind.
        """
        path = Path(out) if out is not None else default_out(command)
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise UserError(f"--out {path} is not empty; pass --force to overwrite its files")
        return cls(path, command)

    def _atomic_write(self, name: str, data: bytes) -> Path:
        """Write `name` atomically (temp file + rename); only on the main process under a launcher."""
        from interp.training.distributed import is_main_process

        target = self.path / name
        if not is_main_process():
            return target
        self.path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

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
