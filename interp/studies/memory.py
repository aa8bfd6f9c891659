"""Will a model train on a device? Parameter counts from the architecture alone, and memory by formula.

    est = memory_estimate("studies/seed_000/configs/mistral-7b.json", "bf16", 80, method="lora")
    est.params, est.weights_gb, est.training_gb, est.fits        # 7.24e9, 14.5, 14.7, True

The model is built from its config (a config.json file, a folder holding one, or an HF id whose
config can be fetched) with random weights on the meta device (`torch.device("meta")`: shapes, no
storage), so a 7B model costs no memory and no download beyond its config. Its parameters are
counted once each (tied embeddings once). Memory, in GB = 1e9 bytes, b = bytes per parameter at the
dtype (fp32 4, bf16 / fp16 2), P all parameters, Q those of the Linear / Conv1D layers inside the
blocks (what LoRA adapts and 4-bit loading quantizes: `interp.training.finetune.lora_targets`),
L = r x (d_in + d_out) summed over those Q layers (the LoRA adapters of rank r):

    weights  = P b                       (qlora: (P - Q) b + Q x 0.5625: NF4 4 bits + one fp32 absmax per 64)
    full     = P (b + b + 8)             weights, gradients, Adam m and v in fp32
    lora     = P b + L (b + b + 8)       frozen weights; adapters with their gradients and Adam states
    qlora    = weights(qlora) + L (b + b + 8)
    fits     = training <= headroom x device memory

Activations (batch x length x layers, and SHD's attention maps: batch x heads x length^2 per layer),
the CUDA context and fragmentation are not counted: `headroom` (default 0.8) leaves them 20 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Method = Literal["full", "lora", "qlora", "inference"]
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
NF4_BYTES = 0.5 + 4 / 64  # 4-bit weight + an fp32 absmax per block of 64 (no double quantization)
ADAM_BYTES = 8  # m and v in fp32
GB = 1e9


@dataclass(frozen=True)
class Architecture:
    """What the meta-device build of a config gives: its family and parameter counts."""

    model_type: str
    params: int  # every parameter once (tied embeddings once)
    block_linear: int  # parameters of the Linear / Conv1D layers inside the blocks
    lora_per_rank: int  # sum of d_in + d_out over those layers (LoRA adapter parameters per unit of rank)
    n_layers: int
    n_heads: int
    n_kv_heads: int
    hidden: int
    vocab: int
    arch_layout: bool  # interp.models.arch has a layout for the family


@dataclass(frozen=True)
class MemoryEstimate:
    model: str
    model_type: str
    params: int
    dtype: str
    method: str
    weights_gb: float  # at `dtype` (4-bit where method is qlora)
    training_gb: float  # the method's formula (module docstring); = weights_gb for inference
    device_gb: float
    headroom: float
    lora_r: int
    fits: bool

    def row(self) -> dict[str, Any]:
        return asdict(self)


def load_config(model: str | Path) -> Any:
    """The transformers config of a config.json file, a folder holding one, or an HF id."""
    from transformers import AutoConfig

    p = Path(model)
    if p.is_file():
        import json

        raw = {k: v for k, v in json.loads(p.read_text()).items() if not k.startswith("_")}
        return AutoConfig.for_model(raw.pop("model_type"), **raw)
    return AutoConfig.from_pretrained(str(model))


def architecture(model: str | Path) -> Architecture:
    """Build the model of `model`'s config on the meta device (no weights) and count its parameters."""
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM

    from interp.models.arch import LAYOUTS, arch_spec

    cfg = load_config(model)
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(cfg)
    params = sum(p.numel() for p in m.parameters())  # parameters() yields a tied tensor once
    spec = arch_spec(cfg)
    weights = [mod.weight for mod in spec.layers(m).modules()
               if (isinstance(mod, nn.Linear) or type(mod).__name__ == "Conv1D") and isinstance(mod.weight, torch.Tensor)]
    return Architecture(
        model_type=cfg.model_type, params=params, block_linear=sum(int(w.numel()) for w in weights),
        lora_per_rank=sum(int(sum(w.shape)) for w in weights), n_layers=spec.n_layers, n_heads=spec.n_heads,
        n_kv_heads=spec.n_kv_heads, hidden=spec.d_model, vocab=spec.vocab_size, arch_layout=cfg.model_type in LAYOUTS)


def weights_bytes(a: Architecture, dtype: str, four_bit: bool = False) -> float:
    b = BYTES[dtype]
    return (a.params - a.block_linear) * b + a.block_linear * NF4_BYTES if four_bit else a.params * b


def training_bytes(a: Architecture, dtype: str, method: Method, lora_r: int = 8) -> float:
    """The module docstring's formula of `method` (inference: the weights alone)."""
    b = BYTES[dtype]
    if method == "full":
        return a.params * (2 * b + ADAM_BYTES)
    weights = weights_bytes(a, dtype, four_bit=method == "qlora")
    if method == "inference":
        return weights
    return weights + lora_r * a.lora_per_rank * (2 * b + ADAM_BYTES)


def memory_estimate(model: str | Path, dtype: str, device_memory_gb: float, method: Method = "lora",
                    lora_r: int = 8, headroom: float = 0.8, arch: Architecture | None = None) -> MemoryEstimate:
    """Parameters, weights and training memory of `model` (a config.json, a folder or an HF id) at
    `dtype`, and whether training by `method` fits `headroom` x `device_memory_gb`."""
    a = arch or architecture(model)
    train = training_bytes(a, dtype, method, lora_r) / GB
    return MemoryEstimate(model=str(model), model_type=a.model_type, params=a.params, dtype=dtype, method=method,
                          weights_gb=round(weights_bytes(a, dtype, method == "qlora") / GB, 2),
                          training_gb=round(train, 2), device_gb=device_memory_gb, headroom=headroom,
                          lora_r=lora_r, fits=train <= headroom * device_memory_gb)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of memory rows (name, params, weights, training, device, fits)."""
    head = ["model", "type", "params", "dtype", "method", "weights GB", "training GB", "device GB", "fits"]
    body = [[r["name"], r["model_type"], f"{r['params'] / 1e9:.3f}B", r["dtype"], r["method"], f"{r['weights_gb']:.2f}",
             f"{r['training_gb']:.2f}", f"{r['device_gb']:g} x {r['headroom']:g}", "yes" if r["fits"] else "no"]
            for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body])
