"""Dataclass fields that name their command-line option, so an option is declared once, beside the
field it sets (the CLI generates its options from these; `interp.cli.training_opts`):

    steps: int | None = option(None, "--steps", "optimizer steps (or --epochs)", ge=1)

`ge` / `gt` / `le` / `lt` state the range of a number (the CLI refuses a value outside it, and NaN,
while parsing). Below every other module: it imports nothing of interp.
"""

from __future__ import annotations

from dataclasses import Field, field
from typing import Any


def option(default: Any, flag: str, help: str, **bounds: float) -> Any:
    """A dataclass field with a default and the metadata of its option (flag, help, range)."""
    unknown = set(bounds) - {"ge", "gt", "le", "lt"}
    if unknown:
        raise TypeError(f"{flag}: unknown bound(s) {sorted(unknown)}; use ge / gt / le / lt")
    return field(default=default, metadata={"flag": flag, "help": help, **bounds})


def option_fields(cls: type) -> list[Field[Any]]:
    """The fields of dataclass `cls` declared with `option`, in declaration order."""
    return [f for f in cls.__dataclass_fields__.values() if "flag" in f.metadata]  # type: ignore[attr-defined]


__all__ = ["option", "option_fields"]
