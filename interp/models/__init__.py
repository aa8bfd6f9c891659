"""Model store and loading: `load_model(name)` returns a `LoadedModel` (model, tokenizer, spec)."""

from interp.models.arch import ArchSpec, arch_spec
from interp.models.loading import LoadedModel, known_aliases, load_model
from interp.models.store import DEFAULT_MODEL, EMBEDDED, interp_home

__all__ = ["ArchSpec", "arch_spec", "LoadedModel", "known_aliases", "load_model", "DEFAULT_MODEL", "EMBEDDED", "interp_home"]
