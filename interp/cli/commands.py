"""Import every command module (interp/cli/*_cmd.py) so each registers itself on `app`."""

import importlib
import pkgutil
from pathlib import Path

for _mod in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.endswith("_cmd")):
    importlib.import_module(f"interp.cli.{_mod}")
