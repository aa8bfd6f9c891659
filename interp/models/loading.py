"""Load a model by alias, local directory, PEFT adapter directory or HF id.

    lm = load_model("smollm2")          # embedded alias (converted into the store on first use)
    lm = load_model("smollm2-owl")      # a model the toolkit made, saved in the store
    lm = load_model("./my-adapter")     # PEFT adapter folder on top of its base
    lm = load_model("tiny-llama")       # random tiny model for tests (no download)

Resolution order: store alias, embedded alias, tiny alias, local folder, HF id ("org/name").

Placement (models loaded from weights: store, embedded, local folder, adapter base, HF id):

    load_model("org/name", dtype="bf16", device_map="auto")   # accelerate big-model placement over the GPUs
    load_model("org/name", load_in_4bit=True)                  # bitsandbytes NF4 weights, compute in `dtype`

`device_map="auto"` needs CUDA (a one-line `UserError` without it); 4-bit weights run on CUDA or,
through bitsandbytes' CPU backend (bitsandbytes >= 0.48), on the CPU (slower, no fused kernels).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from interp.choices import DeviceMap, check_device, choices
from interp.errors import UserError
from interp.models import store
from interp.models.arch import arch_spec
from interp.models.hf_engine import local_model
from interp.models.loaded import DTYPES, LoadedModel
from interp.models.tiny import TINY_FAMILIES, tiny_model
from interp.textfiles import read_json_file

TINY_ALIASES = {f"tiny-{f}": f for f in TINY_FAMILIES}

def known_aliases() -> list[str]:
    names = {m["alias"] for m in store.list_entries()} | set(store.EMBEDDED) | set(TINY_ALIASES)
    return sorted(names)


def load_model(
    name: str = store.DEFAULT_MODEL,
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    attn_implementation: str | None = None,
    device_map: str | None = None,
    load_in_4bit: bool = False,
    _chain: tuple[str, ...] = (),
) -> LoadedModel:
    """Load `name` (see module docstring) in eval mode on `device` (or spread by `device_map`).

    `_chain`: the aliases whose bases led here (prompt teachers, adapters), to refuse a cycle."""
    if name in _chain:
        raise UserError(f"store alias cycle: {' -> '.join(_chain + (name,))}; delete the entry that points back: "
                        f"rm -r {store.entry_dir(_chain[-1])}")
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    device = resolve_device(device) if device_map is None else "auto"
    kwargs = placement_kwargs(dtype, device_map, load_in_4bit, device)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation

    meta = store.read_meta(name)
    if meta is None and name in store.EMBEDDED:
        store.convert_embedded(name)
        meta = store.read_meta(name)
    if meta is not None:
        lm = _load_store_entry(name, meta, kwargs, _chain + (name,))
    elif name in TINY_ALIASES:
        if device_map or load_in_4bit:
            raise UserError(f"--device-map / --load-in-4bit apply to models loaded from weights; '{name}' is built "
                            "from a config")
        model: Any
        model, tok = tiny_model(TINY_ALIASES[name])
        lm = local_model(model.to(DTYPES[dtype]), tok, arch_spec(model.config), name, "random tiny model (seed 0)")
        if attn_implementation:
            model.set_attn_implementation(attn_implementation)
    elif Path(name).expanduser().is_dir():
        lm = _load_dir(Path(name).expanduser(), name, kwargs, _chain + (name,))
    elif "/" in name and not name.startswith((".", "/")):
        lm = _load_hub(name, kwargs)
    else:
        raise UserError(f"unknown model '{name}'; known aliases: {', '.join(known_aliases())} "
                        "(or give a local folder or an HF id like org/name). A model of your own is made under an "
                        f"alias, e.g. `interp teach --base {store.DEFAULT_MODEL} --trait owl --alias {name}` or "
                        f"`interp finetune ... --alias {name}`")
    if device_map is None and not load_in_4bit:
        lm.model.to(device)  # type: ignore[arg-type]  # transformers types PreTrainedModel.to by its wrapper
    lm.model.eval()
    _ensure_pad(lm.tokenizer)
    lm.extra["placement"] = _placement(lm.model, dtype, device, device_map, load_in_4bit)
    return lm


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        check_device(device)
    except ValueError as e:
        raise UserError(str(e)) from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda needs a CUDA GPU, and this machine has none (use --device cpu or auto)")
    return device


DEVICE_MAPS = choices(DeviceMap)


def placement_kwargs(dtype: str, device_map: str | None, load_in_4bit: bool, device: str = "cpu") -> dict[str, Any]:
    """`from_pretrained` kwargs for a dtype, an accelerate device map and bitsandbytes 4-bit weights.

    4-bit: NF4 weights with double quantisation, matmuls computed in `dtype` (bf16 is the usual choice
    on a GPU; fp32 works), placed on `device` when loading (quantised weights are never moved after).
    The device map needs CUDA: a one-line UserError says so on a CPU-only machine.
    """
    kwargs: dict[str, Any] = {"dtype": DTYPES[dtype]}
    if device_map is not None:
        if device_map not in DEVICE_MAPS:
            raise UserError(f"--device-map must be one of {', '.join(DEVICE_MAPS)}, got {device_map!r}")
        if not torch.cuda.is_available():
            raise UserError("--device-map auto spreads the layers over CUDA GPUs, and this machine has none "
                            "(drop it to load on the CPU)")
        kwargs["device_map"] = device_map
    if load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise UserError("--load-in-4bit needs bitsandbytes: pip install 'interp[quant]'") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=DTYPES[dtype])
        kwargs.setdefault("device_map", {"": device if device != "auto" else "cpu"})
    return kwargs


def _placement(model: torch.nn.Module, dtype: str, device: str, device_map: str | None,
               load_in_4bit: bool) -> dict[str, Any]:
    """What summary.json records about where and how the weights live."""
    hf_map = getattr(model, "hf_device_map", None)
    per_device: dict[str, int] = {}
    if device_map is not None and hf_map:
        for dev in hf_map.values():
            per_device[str(dev)] = per_device.get(str(dev), 0) + 1
    return {"dtype": dtype, "device": device, "device_map": device_map, "modules_per_device": per_device or None,
            "load_in_4bit": load_in_4bit}


def _ensure_pad(tok: PreTrainedTokenizerBase) -> None:
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token


def _load_store_entry(alias: str, meta: dict[str, Any], kwargs: dict[str, Any], chain: tuple[str, ...]) -> LoadedModel:
    if meta.get("kind") == "prompt":
        base = load_model(meta["base"], **_nested(kwargs), _chain=chain)
        base.name, base.source = alias, meta["source"]
        base.system_prompt = meta["system_prompt"]
        base.extra["store_meta"] = meta
        return base
    folder = store.entry_dir(alias)
    store.verify_entry(alias, meta)  # complete, and the weights are the ones recorded
    with store.offline(), _load_errors(f"store entry '{alias}' ({folder})"):
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    return local_model(model, tok, arch_spec(model.config), alias, meta.get("source", "store"), str(folder),
                       system_prompt=meta.get("system_prompt"), sha256=meta.get("sha256"), extra={"store_meta": meta})


@contextmanager
def _load_errors(what: str) -> Iterator[None]:
    """A model folder that transformers or safetensors cannot read (truncated weights, a broken
    config) becomes one UserError line; other errors keep their tracebacks."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ValueError, KeyError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"cannot load {what}: {type(e).__name__}: {first}") from e
    except Exception as e:
        if type(e).__name__ != "SafetensorError":
            raise
        raise UserError(f"cannot load {what}: its weights are unreadable (SafetensorError: {e})") from e


def _load_dir(folder: Path, name: str, kwargs: dict[str, Any], chain: tuple[str, ...] = ()) -> LoadedModel:
    adapter_cfg = folder / "adapter_config.json"
    if adapter_cfg.is_file():
        from peft import PeftModel

        cfg = read_json_file(adapter_cfg, "adapter config")
        base_name = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
        if not base_name:
            raise UserError(f"{adapter_cfg} names no base_model_name_or_path")
        base = load_model(base_name, **_nested(kwargs), _chain=chain)
        from interp.models.peft_compat import peft_wrapping

        with _load_errors(f"adapter {folder}"), peft_wrapping():
            adapted: Any = PeftModel.from_pretrained(base.model, str(folder))
        return local_model(adapted, base.tokenizer, base.spec, name, f"adapter {folder} on {base_name}", str(folder),
                           system_prompt=base.system_prompt)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} is neither a model folder (config.json) nor a PEFT adapter (adapter_config.json)")
    with _load_errors(f"model folder {folder}"):
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    return local_model(model, tok, arch_spec(model.config), name, f"local folder {folder}", str(folder))


def _load_hub(repo_id: str, kwargs: dict[str, Any]) -> LoadedModel:
    token = os.environ.get("HF_TOKEN")
    try:
        tok = AutoTokenizer.from_pretrained(repo_id, token=token)
        model = AutoModelForCausalLM.from_pretrained(repo_id, token=token, **kwargs)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"could not load '{repo_id}' from the Hugging Face hub (offline, private without "
                        f"HF_TOKEN, or no such model): {first}") from e
    return local_model(model, tok, arch_spec(model.config), repo_id, f"hf:{repo_id}")


def _dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


def _nested(kwargs: dict[str, Any]) -> dict[str, Any]:
    """load_model arguments for a base model (prompt teacher, adapter) from this load's kwargs; the
    device is applied once, by the outer call."""
    dm = kwargs.get("device_map")
    return {"dtype": _dtype_name(kwargs["dtype"]), "attn_implementation": kwargs.get("attn_implementation"),
            "device_map": dm if dm == "auto" else None, "load_in_4bit": "quantization_config" in kwargs,
            "device": str(dm[""]) if isinstance(dm, dict) else "cpu"}
