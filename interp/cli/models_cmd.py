"""`interp models`: list aliases, where each comes from, and whether it is converted."""

from __future__ import annotations

from interp.cli.app import app
from interp.cli.common import console, print_table
from interp.models.store import DEFAULT_MODEL


@app.command("models")
def models_command() -> None:
    """List model aliases: embedded (from PyPI packages), made by the toolkit, and tiny test models."""
    from interp.models import store
    from interp.models.loading import TINY_ALIASES

    entries = {m["alias"]: m for m in store.list_entries()}
    rows = []
    for alias, emb in store.EMBEDDED.items():
        meta = entries.pop(alias, None)
        state = ("converted" if meta else "not yet (converts on first use)" if emb.installed()
                 else f"not installed (optional: {emb.install})")
        rows.append((alias, "embedded", f"pypi:{emb.package}", state, str(store.entry_dir(alias)) if meta else "-"))
    for alias, meta in entries.items():
        rows.append((alias, meta.get("kind", "made"), meta.get("source", "?"),
                     "store" if meta.get("kind") != "prompt" else f"prompt on {meta.get('base')}", str(store.entry_dir(alias))))
    for alias, fam in TINY_ALIASES.items():
        rows.append((alias, "tiny", f"random {fam} from a config (seed 0)", "built in memory", "-"))
    print_table(f"models (store: {store.models_dir()})", ["alias", "kind", "source", "status", "path"], rows)
    console.print(f"default model: {DEFAULT_MODEL}; also accepted: a local model folder, a PEFT adapter folder, or an HF id (org/name)")
