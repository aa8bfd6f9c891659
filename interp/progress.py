"""Progress bars for long work (rich, on stderr), shared by every command and library call.

    with progress_bar(total=len(prompts), description="scoring") as advance:
        for batch in batches:
            ...
            advance(len(batch))

Library calls take `progress: bool`; the CLI turns it on, tests leave it off. On a terminal it is a
live rich bar; otherwise (a log file, CI) plain lines: one at the start (0/total), then one whenever
at least 1 / `LOG_PARTS` (10 %) of the total more is done or `LOG_EVERY_S` seconds have passed since
the last line, and one at the end. A job written to a log shows at once that it started and where
it is, in at most about LOG_PARTS + 2 + elapsed / LOG_EVERY_S lines, however many
items it advances over.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_console = Console(stderr=True)
LOG_EVERY_S = 30.0
LOG_PARTS = 10  # non-terminal: a line each time another 1 / LOG_PARTS of the total is done


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


def _log_lines(total: int, description: str, clock: Callable[[], float] = time.perf_counter,
               say: Callable[[str], None] | None = None) -> Callable[[int], None]:
    """advance(n) for a non-terminal: prints '{description}: done/total (pct) elapsed, ~remaining' now
    (0/total), then when >= total / LOG_PARTS more is done or LOG_EVERY_S seconds passed
    since the last line, and once when done reaches total. `clock` and `say` (default: the stderr
    console) are for tests."""
    out = say or (lambda line: _console.print(line, highlight=False))
    t0 = clock()
    state = {"done": 0, "last_t": t0, "last_done": 0, "ended": False}

    def line(now: float) -> None:
        done, el = state["done"], now - t0
        text = f"{description}: {done}/{total} ({100 * done / max(total, 1):.0f}%) {el:.0f} s elapsed"
        if done:
            text += f", ~{el / done * max(total - done, 0):.0f} s left"
        out(text)
        state["last_t"], state["last_done"] = now, done

    def advance(n: int = 1) -> None:
        state["done"] += n
        now = clock()
        end = state["done"] >= total and not state["ended"]
        step = total > 0 and LOG_PARTS * (state["done"] - state["last_done"]) >= total  # integers: no rounding
        if end or step or now - state["last_t"] >= LOG_EVERY_S:
            state["ended"] = state["ended"] or state["done"] >= total
            line(now)

    line(t0)
    return advance
