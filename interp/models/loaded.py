"""The loaded model and the engine that runs its forwards: the two types every other module of
`interp.models` builds on, in one module below all of them (each refers to the other).

    lm = local_model(model, tokenizer, spec, name, source)    # interp.models.hf_engine: lm.engine = HFEngine
    lm = attach(lm, Executor("simulate"))                      # interp.models.remote: lm.engine = NnsightEngine
    lp = lm.engine.logprobs(batch, keep=1)                     # what interp.scoring calls

Who makes a `LoadedModel` sets its engine, once: `load_model` and `local_model` the HF engine, `attach`
/ `load_remote` the nnsight engine. `lm.engines` holds other engines over the same weights, made on
request by `interp.models.engine.engine_for` (trace --backend).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp.models.arch import ArchSpec
from interp.models.tree import TreePlan

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

Hook = tuple[str, Callable[..., Any]]  # (hook name, fn(activation, hook) -> activation), bridge only


class Engine(ABC):
    """What runs the forwards of one `LoadedModel` (module docstring): an engine must implement
    `logprobs`, `trie_logprobs` and `activations`; `forward` defaults to the local model."""

    backend: str = "?"  # how activations are read: "bridge" | "nnsight"
    weights_here: bool = True
    bridge_available: bool = False

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm  # the model is read at call time: a caller may replace lm.model

    def describe(self) -> dict[str, Any] | None:
        """What summary.json records about the engine (None for plain local forwards)."""
        return None

    def sampler(self) -> dict[str, Any] | None:
        """Where samples are drawn when not by the local sampler (a server: `openai_engine`), else None."""
        return None

    @property
    def input_device(self) -> torch.device | str:
        """Where input tensors go."""
        return next(self.lm.model.parameters()).device

    @abstractmethod
    def logprobs(self, batch: dict[str, torch.Tensor], keep: int, columns: Sequence[int] | None = None) -> torch.Tensor:
        """log-softmax of the last `keep` positions of a padded batch: (batch, keep, vocab or
        len(columns)) float32 on the CPU."""

    @abstractmethod
    def trie_logprobs(self, plan: TreePlan, max_nodes: int | None = None, progress: bool = False,
                      description: str = "trie") -> np.ndarray:
        """log P(sequence | context) for every sequence of `plan`: (n_seq,) float64."""

    @abstractmethod
    def activations(self, tokens: torch.Tensor, names: Sequence[str], last_only: bool = False,
                    hooks: Sequence[Hook] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One unpadded batch (batch, pos) -> (last-position logits (batch, vocab), {hook name: activation})."""

    def forward(self, **kwargs: Any) -> Any:
        """A plain forward of the model (the sampler's KV-cache loop)."""
        return self.lm.model(**kwargs)



@dataclass
class LoadedModel:
    """A causal LM, its tokenizer and its `ArchSpec`, plus where it came from and the engine that runs
    its forwards."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    spec: ArchSpec
    name: str
    source: str
    path: str | None = None
    system_prompt: str | None = None  # a trait carried as a system prompt (prompt-method teachers)
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # what runs the forwards, set once by whoever made the model (module docstring): typed Engine for every
    # reader; None only between LoadedModel(...) and local_model / attach setting it
    engine: Engine = None  # type: ignore[assignment]
    engines: dict[str, Engine] = field(default_factory=dict)  # other engines over the same weights, by backend

    @property
    def is_chat(self) -> bool:
        return getattr(self.tokenizer, "chat_template", None) is not None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def fingerprint(self) -> str:
        """sha256 of the weights: the store's recorded digest, else a hash of the state dict."""
        if self.sha256 is None:
            h = hashlib.sha256()
            for k, v in self.model.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
            self.sha256 = "state:" + h.hexdigest()
        return self.sha256

    def identity(self) -> dict[str, Any]:
        """What summary.json records about the model."""
        return {
            "name": self.name,
            "source": self.source,
            "path": self.path,
            "family": self.spec.family,
            "model_type": self.spec.model_type,  # the config's: tells Qwen2 (qwen2) from SmolLM2 (llama), one layout family
            "n_layers": self.spec.n_layers,
            "n_heads": self.spec.n_heads,
            "n_params": sum(p.numel() for p in self.model.parameters()),
            "system_prompt": self.system_prompt,
            "sha256": self.fingerprint(),
            **({"placement": self.extra["placement"]} if "placement" in self.extra else {}),
            **({"steering": self.extra["steering"]} if "steering" in self.extra else {}),
            **({"executor": engine} if (engine := self.engine.describe()) is not None else {}),
            **({"sampler": sampler} if (sampler := self.engine.sampler()) is not None else {}),
        }


__all__ = ["DTYPES", "Engine", "Hook", "LoadedModel"]
