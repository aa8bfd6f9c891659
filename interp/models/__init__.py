"""Model store and loading: `load_model(name)` returns a `LoadedModel` (model, tokenizer, spec).

The names below are imported on first use (PEP 562), so `interp.models.store` (the aliases, the
default model) can be read without importing torch: the CLI takes its defaults from there.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"ArchSpec": "arch", "arch_spec": "arch", "LoadedModel": "loaded", "known_aliases": "loading",
          "load_model": "loading", "DEFAULT_MODEL": "store", "EMBEDDED": "store", "interp_home": "store"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'interp.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"interp.models.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = list(_WHERE)
