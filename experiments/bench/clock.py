"""Wall and CPU seconds of a block, for the benchmark scripts: `with Clock() as c: ...; c.wall, c.cpu`.

CPU time (time.process_time) is this process's compute; on a shared machine the wall time also
carries the other jobs' load.
"""

from __future__ import annotations

import time


class Clock:
    def __enter__(self) -> "Clock":
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w0, time.process_time() - self.c0

    def __str__(self) -> str:
        return f"{self.cpu:.2f} s CPU ({self.wall:.2f} s wall)"
