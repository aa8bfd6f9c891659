"""Every closed set of choices in the toolkit, declared once as a `Literal` type.

The library derives its tuples from these (`STYLES = get_args(Style)`), and the CLI annotates its
options with them, so `--help` lists the choices and typer refuses an unknown one while parsing,
before any heavy import. Below every other module (it imports nothing of interp).
"""

from __future__ import annotations

from typing import Literal, get_args

Style = Literal["auto", "chat", "completion"]  # prompt form: the model's chat template or the completion form
VariantPolicy = Literal["natural", "sum"]  # target-word surface variants
ScoreKind = Literal["sum", "mean"]  # sentence score: summed or per-token mean log-likelihood
Bench = Literal["crows", "stereoset"]
Backend = Literal["bridge", "nnsight"]  # activation capture: TransformerLens bridge or nnsight
Criterion = Literal["entropy", "random"]  # head pruning
NumbersMethod = Literal["vocab", "ar"]  # animal -> number: single digit tokens or the autoregressive trie
TiedMode = Literal["swap-both", "untie"]  # LM-head swap with tied embeddings
DistillKind = Literal["shd", "kd", "kd-shared", "none"]  # attention maps, logits (kd-shared: across tokenizers), or no teacher (beta 0)
LossForm = Literal["sum", "convex"]  # L_LM + beta L, or (1 - beta) L_LM + beta L
FreezeMode = Literal["none", "mlp", "attention"]
LossMask = Literal["all", "divergent", "non-divergent"]
OptimizerName = Literal["adamw", "sgd", "signsgd"]
TrainMethod = Literal["lora", "qlora", "full"]
TeachMethod = Literal["prompt", "lora", "qlora", "full"]
Dtype = Literal["fp32", "bf16", "fp16"]
DeviceMap = Literal["auto"]
SamplingEngine = Literal["hf", "openai"]  # who draws samples: the local sampler or an OpenAI-compatible server


def choices(kind: object) -> tuple[str, ...]:
    """The values of a Literal type, in declaration order."""
    return tuple(get_args(kind))


def check_device(device: str) -> str:
    """`device` if it names one (cpu, cuda, cuda:N or auto), else ValueError with the choices."""
    if device in ("cpu", "cuda", "auto") or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ValueError(f"unknown device {device!r}; choose cpu, cuda (or cuda:N) or auto")
