"""Progress bars for long work (rich, on stderr), shared by every command and library call.

    with progress_bar(total=len(prompts), description="scoring") as advance:
        for batch in batches:
            ...
            advance(len(batch))

Library calls take `progress: bool`; the CLI turns it on, tests leave it off. On a terminal it is a
live rich bar; otherwise (a log file, CI) one plain line at most every `LOG_EVERY_S` seconds, so a
long job written to a log still shows where it is.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_console = Console(stderr=True)
LOG_EVERY_S = 30.0


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n=1: None
        return
    if not _console.is_terminal:
        yield _log_lines(total, description)
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=_console, transient=False,
    ) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


def _log_lines(total: int, description: str) -> Callable[[int], None]:
    """advance(n) that prints '{description}: done/total (pct) elapsed, ~remaining' every LOG_EVERY_S s and at the end."""
    t0 = time.perf_counter()
    state = {"done": 0, "last": t0}

    def advance(n: int = 1) -> None:
        state["done"] += n
        now = time.perf_counter()
        if now - state["last"] >= LOG_EVERY_S or state["done"] >= total:
            state["last"] = now
            done, el = state["done"], now - t0
            left = el / done * (total - done) if done else float("nan")
            _console.print(f"{description}: {done}/{total} ({100 * done / max(total, 1):.0f}%) "
                           f"{el:.0f} s elapsed, ~{left:.0f} s left", highlight=False)
    return advance
