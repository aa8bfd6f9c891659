"""Step functions that more than one kind of study uses (called as `func(out, params, **inputs)`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import UserError


def draw_subset(out: Path, params: dict[str, Any], pool: str) -> None:
    """out/subset.jsonl: params["n"] rows of the pool drawn without replacement by
    default_rng([params["seed"], n]), in pool order (the same rows for every arm of a seed and dose)."""
    rows = Path(pool).read_text().splitlines()
    n, seed = params["n"], params["seed"]
    if len(rows) < n:
        raise UserError(f"{pool} has {len(rows)} rows, fewer than the {n} examples asked for")
    keep = np.sort(np.random.default_rng([seed, n]).choice(len(rows), n, replace=False))
    (out / "subset.jsonl").write_text("".join(rows[i] + "\n" for i in keep))


def copy_files(src: Path | str, out: Path) -> None:
    """Every file directly in `src` into `out` (a report job publishes its raw tables beside its report)."""
    import shutil

    for f in sorted(Path(src).iterdir()):
        if f.is_file():
            shutil.copyfile(f, out / f.name)
