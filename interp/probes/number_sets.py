"""Number sets for probes: parse user input strictly, sample random numbers of a given length.

Numbers are strings of ASCII digits ("087" keeps its leading zero: it is three tokens).
`str.isdigit()` alone admits Arabic-Indic and superscript digits (a bug of the original study);
we require `s.isascii() and s.isdigit()`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interp.errors import UserError
from interp.textfiles import read_text

MAX_DIGITS = 7


def check_number(s: str) -> str:
    t = s.strip()
    if not t or not (t.isascii() and t.isdigit()):
        raise UserError(f"number {s!r} is not a string of ASCII digits 0-9")
    return t


def parse_numbers(text: str) -> list[str]:
    """'087,747 123' -> ['087', '747', '123'] (comma- or whitespace-separated, order kept, duplicates dropped)."""
    parts = [p for chunk in text.replace(",", " ").split() for p in [chunk]]
    if not parts:
        raise UserError("no numbers given")
    return list(dict.fromkeys(check_number(p) for p in parts))


def read_numbers_file(path: str | Path) -> list[str]:
    return parse_numbers(read_text(path, "numbers file"))


def all_numbers(digits: int) -> list[str]:
    """All 10**digits zero-padded strings of length `digits`."""
    check_digits(digits)
    return [str(i).zfill(digits) for i in range(10**digits)]


def check_digits(digits: int) -> None:
    if not 1 <= digits <= MAX_DIGITS:
        raise UserError(f"--digits must be between 1 and {MAX_DIGITS}, got {digits}")


def random_numbers(digits: int, n: int, seed: int = 0, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """`n` distinct random zero-padded numbers of length `digits` (uniform, seeded), none in `exclude`."""
    check_digits(digits)
    pool = 10**digits - len({e for e in exclude if len(e) == digits})
    if n < 1 or n > pool:
        raise UserError(f"cannot sample {n} distinct {digits}-digit numbers (only {pool} available)")
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen = set(exclude)
    while len(out) < n:
        for v in rng.choice(10**digits, size=min(10**digits, 2 * (n - len(out)) + 8), replace=False):
            s = str(int(v)).zfill(digits)
            if s not in seen:
                seen.add(s)
                out.append(s)
                if len(out) == n:
                    break
    return out
