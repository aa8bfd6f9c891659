"""What every resumable experiment here shares: run a pipeline command as a unit, time it, and
claim it so that two workers (one core each) can share one queue.

    secs = interp("finetune", "--model", "smollm2", ...)     # `python -m interp ...`, raises on failure
    record_time(OUT, "train sb-kd-s0", secs)                  # OUT/timings.json, merged under a lock
    if claim(WORK, unit): ...; release(WORK, unit)            # O_EXCL claim file holding the pid
    in_store("smollm2-owl")                                   # is the alias in the model store?

A claim whose process is gone is taken over, so a killed worker never blocks a unit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def interp(*args: str) -> float:
    """Run `python -m interp ARGS` in the repository root; seconds it took. Raises on failure (its
    output is shown)."""
    t0 = time.perf_counter()
    print("$ interp " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "interp", *args], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def record_time(out: Path, unit: str, seconds: float) -> None:
    """out/timings.json[unit] = seconds (merged under a lock: two workers write it). A unit timed before
    (a rebuild on a new machine) keeps its first time; the new one goes under 'unit (rerun <UTC time>)'."""
    import fcntl
    from datetime import datetime, timezone

    out.mkdir(parents=True, exist_ok=True)
    p = out / "timings.json"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(p.read_text()) if p.exists() else {}
        if unit in data:
            unit = f"{unit} (rerun {datetime.now(timezone.utc):%Y-%m-%dT%H%M})"
        data[unit] = round(seconds, 1)
        p.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def in_store(alias: str) -> bool:
    from interp.models.store import read_meta

    return read_meta(alias) is not None


def claim(work: Path, unit: str) -> bool:
    """True when this process may build `unit`: an O_EXCL claim file under work/claims, taken over
    when its pid is gone."""
    d = work / "claims"
    d.mkdir(parents=True, exist_ok=True)
    p = d / unit
    for _ in range(2):
        try:
            fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True
        except FileExistsError:
            try:
                pid = int(p.read_text() or 0)
                os.kill(pid, 0)
                return pid == os.getpid()
            except (ProcessLookupError, ValueError):
                p.unlink(missing_ok=True)  # its worker is gone: take it over
    return False


def release(work: Path, unit: str) -> None:
    (work / "claims" / unit).unlink(missing_ok=True)


def work_dir(name: str) -> Path:
    """Scratch folder of an experiment: $INTERP_HOME/<name> (beside the store it fills)."""
    from interp.models.store import interp_home

    return interp_home() / name
