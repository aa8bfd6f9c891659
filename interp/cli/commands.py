"""Import every command module (interp/cli/*_cmd.py) so each registers itself on `app`."""

import importlib
import pkgutil

import interp.cli as _pkg

for _mod in sorted(m.name for m in pkgutil.iter_modules(_pkg.__path__) if m.name.endswith("_cmd")):
    importlib.import_module(f"interp.cli.{_mod}")
