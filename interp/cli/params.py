"""Option declarations that carry their own validation, so typer refuses a bad value while parsing,
before the command body runs and before any heavy import (torch, transformers):

    batch_size: int = Int(16, "--batch-size", help="prompts per forward pass", ge=1)
    tau: float = Float(1.0, "--tau", help="teacher temperature", gt=0)
    data: Path = InFile(..., "--data", help="JSONL with prompt / completion")
    style: Style = typer.Option("auto", "--style", ...)        # a Literal of interp.choices: typer checks it

The range is checked by a typer callback and appended to the help text ("(range >= 1)");
NaN fails every bound, so a bounded float refuses it. `InFile` refuses a missing path, a
folder, an empty or whitespace-only file, and a binary one (not UTF-8, or with NUL bytes), naming
the option. tests/test_cli_generated.py tries 0, a negative value and NaN on every numeric option,
a missing / empty / binary file on every input file and an unknown value on every choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer


def range_text(ge: Optional[float], gt: Optional[float], le: Optional[float], lt: Optional[float]) -> str:
    """'>= 1', '> 0', 'in (0, 1]' ...: the range of a numeric option, as --help and errors show it."""
    lo = (f"[{ge:g}" if ge is not None else f"({gt:g}" if gt is not None else None)
    hi = (f"{le:g}]" if le is not None else f"{lt:g})" if lt is not None else None)
    if lo and hi:
        return f"in {lo}, {hi}"
    if lo:
        return (">= " if lo[0] == "[" else "> ") + lo[1:]
    return ("<= " if hi[-1] == "]" else "< ") + hi[:-1]


def _bounds(ge: Optional[float], gt: Optional[float], le: Optional[float], lt: Optional[float]) -> Callable[[Any], Any]:
    """A typer callback refusing values outside the range, and NaN (every comparison with it is false)."""
    def check(value: Any) -> Any:
        if value is None:
            return value
        ok = ((ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)
              and (lt is None or value < lt))
        if not ok:
            raise typer.BadParameter(f"must be {range_text(ge, gt, le, lt)}, got {value}")
        return value

    return check


def _number(default: Any, flags: tuple[str, ...], help: str, ge: Optional[float], le: Optional[float],
            gt: Optional[float], lt: Optional[float], **kw: Any) -> Any:
    if ge is None and le is None and gt is None and lt is None:
        raise TypeError(f"{flags[0]}: a numeric option states its range (ge / gt / le / lt)")
    return typer.Option(default, *flags, help=f"{help} (range {range_text(ge, gt, le, lt)})", callback=_bounds(ge, gt, le, lt),
                        **kw)


def Int(default: Any, *flags: str, help: str, ge: Optional[int] = None, le: Optional[int] = None, **kw: Any) -> Any:
    """An integer option with its range: `Int(16, "--batch-size", help="...", ge=1)`."""
    return _number(default, flags, help, ge, le, None, None, **kw)


def Float(default: Any, *flags: str, help: str, ge: Optional[float] = None, le: Optional[float] = None,
          gt: Optional[float] = None, lt: Optional[float] = None, **kw: Any) -> Any:
    """A float option with its range; every bound refuses NaN."""
    return _number(default, flags, help, ge, le, gt, lt, **kw)


def _input_file(value: Optional[Path]) -> Optional[Path]:
    """typer callback: `value` if it is a UTF-8 text file with some non-whitespace content, else
    BadParameter saying why (`interp.textfiles.input_file_problem`)."""
    from interp.textfiles import input_file_problem

    problem = None if value is None else input_file_problem(value)
    if problem is not None:
        raise typer.BadParameter(f"{value} {problem}")
    return value


def InFile(default: Any, *flags: str, help: str, **kw: Any) -> Any:
    """A text input file option, checked while parsing (see `_input_file`)."""
    return typer.Option(default, *flags, help=help, callback=_input_file, **kw)


def InArg(help: str) -> Any:
    """A required text input file argument, checked while parsing (see `_input_file`)."""
    return typer.Argument(..., help=help, callback=_input_file)


__all__ = ["Int", "Float", "InFile", "InArg", "range_text"]
