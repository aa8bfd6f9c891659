"""Architecture specs: the one place where model families differ.

An `ArchSpec` names the shapes (layers, heads, kv heads, head_dim) and the module paths
(attention, o_proj, v_proj, MLP, embedding, final norm, LM head) of one loaded model. Every other
module asks the spec instead of branching on the family, e.g.::

    spec = arch_spec(model.config)
    o_proj = spec.module(model, "o_proj", layer=5)   # its input is z: (batch, pos, head * head_dim)

Adding a family means adding one `_Layout` entry to `LAYOUTS` (keyed by `config.model_type`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

from interp.errors import UserError


@dataclass(frozen=True)
class _Layout:
    """Module paths of one family, relative to the causal-LM object."""

    family: str
    layers: str  # the ModuleList of decoder blocks
    attn: str  # relative to a block
    q_proj: str | None  # relative to a block; None when q, k, v are fused
    k_proj: str | None
    v_proj: str | None
    qkv_proj: str | None  # fused projection (GPT-2's c_attn), else None
    o_proj: str  # relative to a block; its input is the concatenated per-head z
    mlp: str  # relative to a block
    embed: str
    final_norm: str
    lm_head: str = "lm_head"
    # relative to a block: a norm applied to the attention output before it joins the residual
    # stream (Gemma's post_attention_layernorm); None when attn_out = o_proj(z) is added as is
    attn_out_norm: str | None = None
    # relative to a block: a norm applied to the MLP output before it joins the residual stream
    # (Gemma's post_feedforward_layernorm); None when mlp_out = mlp(x) is added as is
    mlp_out_norm: str | None = None


_LLAMA_LIKE: dict[str, Any] = dict(
    layers="model.layers",
    attn="self_attn",
    q_proj="self_attn.q_proj",
    k_proj="self_attn.k_proj",
    v_proj="self_attn.v_proj",
    qkv_proj=None,
    o_proj="self_attn.o_proj",
    mlp="mlp",
    embed="model.embed_tokens",
    final_norm="model.norm",
)

LAYOUTS: dict[str, _Layout] = {
    "llama": _Layout(family="llama", **_LLAMA_LIKE),
    "mistral": _Layout(family="llama", **_LLAMA_LIKE),
    "qwen2": _Layout(family="llama", **_LLAMA_LIKE),
    "gemma": _Layout(family="gemma", **_LLAMA_LIKE),  # Gemma (v1, e.g. Gemma-2B): Llama's paths, embeddings x sqrt(d)
    "gemma3_text": _Layout(family="gemma3", attn_out_norm="post_attention_layernorm",
                           mlp_out_norm="post_feedforward_layernorm", **_LLAMA_LIKE),
    "gemma2": _Layout(family="gemma2", attn_out_norm="post_attention_layernorm",
                      mlp_out_norm="post_feedforward_layernorm", **_LLAMA_LIKE),
    "gpt2": _Layout(
        family="gpt2",
        layers="transformer.h",
        attn="attn",
        q_proj=None,
        k_proj=None,
        v_proj=None,
        qkv_proj="attn.c_attn",
        o_proj="attn.c_proj",
        mlp="mlp",
        embed="transformer.wte",
        final_norm="transformer.ln_f",
    ),
}


@dataclass(frozen=True)
class ArchSpec:
    """Shapes and module paths of one model.

    z (the input of o_proj) has shape (batch, pos, n_heads * head_dim); head h owns the slice
    [h * head_dim, (h + 1) * head_dim). Query head h reads kv head h // (n_heads // n_kv_heads).
    """

    family: str
    model_type: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_model: int
    vocab_size: int
    tied_embeddings: bool
    layout: _Layout
    final_logit_softcap: float | None = None  # Gemma 2: logits = c * tanh(x / c) after the unembedding

    def uncapped(self, logits: Any) -> Any:
        """The logits before the final soft-capping (x = c * atanh(y / c)); the logits themselves when
        the family has none. DLA is linear in the residual, so it attributes these."""
        c = self.final_logit_softcap
        return logits if not c else c * (logits.double() / c).clamp(-1 + 1e-12, 1 - 1e-12).atanh()

    @property
    def n_components(self) -> int:
        """Number of attention heads in the whole model (n_layers * n_heads)."""
        return self.n_layers * self.n_heads

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layout"] = asdict(self.layout)
        return d

    # ---- module access -------------------------------------------------------------------
    def layers(self, model: nn.Module) -> nn.ModuleList:
        return _get(_unwrap(model), self.layout.layers)

    def module(self, model: nn.Module, name: str, layer: int | None = None) -> nn.Module:
        """Module `name` (a `_Layout` field) of block `layer`, or a model-level one if layer is None."""
        path = getattr(self.layout, name)
        if path is None:
            raise KeyError(f"{self.family} has no separate {name}")
        if layer is None:
            return _get(_unwrap(model), path)
        if not 0 <= layer < self.n_layers:
            raise UserError(f"layer {layer} is out of range: the model has {self.n_layers} layers (0..{self.n_layers - 1})")
        return _get(self.layers(model)[layer], path)

    def path(self, name: str, layer: int | None = None) -> str:
        """Dotted path of module `name` relative to `base_model(model)`, e.g. 'model.layers.5.self_attn.o_proj'
        (for wrappers that mirror the module tree, such as nnsight's envoys)."""
        rel = getattr(self.layout, name)
        if rel is None:
            raise KeyError(f"{self.family} has no separate {name}")
        return rel if layer is None else f"{self.layout.layers}.{layer}.{rel}"

    # ---- weights in one orientation for every family --------------------------------------
    @property
    def o_proj_transposed(self) -> bool:
        """Whether o_proj stores its weight as (n_heads * head_dim, d_model) (GPT-2's Conv1D)."""
        return self.layout.qkv_proj is not None

    def mlp_out_path(self, layer: int) -> str:
        """Path of the module whose output is what the MLP adds to the residual stream."""
        return self.path("mlp_out_norm" if self.layout.mlp_out_norm else "mlp", layer)

    def out_weight(self, model: nn.Module, layer: int) -> "torch.Tensor":
        """W_O as (d_model, n_heads * head_dim): o_proj(z) = z @ W_O.T (+ bias), the matrix o_proj
        actually applies (`effective_weight`: LoRA on o_proj of an unmerged adapter included)."""
        return effective_weight(self.module(model, "o_proj", layer), self.o_proj_transposed)

    def value_states(self, model: nn.Module, layer: int, hidden: "torch.Tensor") -> "torch.Tensor":
        """Per-query-head values v = LN(x) W_V: (batch, pos, n_heads, head_dim), kv heads expanded.

        `hidden` is the attention module's input (after the block's input norm): (batch, pos, d_model).
        """
        b, s, _ = hidden.shape
        if self.layout.qkv_proj is not None:
            qkv = self.module(model, "qkv_proj", layer)(hidden)
            v = qkv[..., 2 * self.n_heads * self.head_dim:]
        else:
            v = self.module(model, "v_proj", layer)(hidden)
        v = v.view(b, s, self.n_kv_heads, self.head_dim)
        return v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=2)

    def value_streams(self, model: nn.Module, layer: int, hidden: "torch.Tensor") -> "torch.Tensor":
        """X_h = LN(x) W_V,h W_O,h per head, before attention mixing: (batch, head, pos, d_model).

        sum_h A_h X_h (+ o_proj bias) equals the attention block's output.
        """
        v = self.value_states(model, layer, hidden)  # (batch, pos, head, head_dim)
        w_o = self.out_weight(model, layer).view(self.d_model, self.n_heads, self.head_dim)
        return torch.einsum("bshe,dhe->bhsd", v, w_o)


PROBE_ROWS = 4096  # identity rows per probing forward in `effective_weight`


def effective_weight(module: nn.Module, transposed: bool = False) -> torch.Tensor:
    """The (out_features, in_features) matrix W that `module` applies: module(x) = x @ W.T + b.

    A plain `nn.Linear` (or GPT-2's Conv1D, `transposed`: stored as (in, out)) returns its weight
    itself. Anything else that is linear in x (an unmerged PEFT LoRA / DoRA layer, whose `.weight`
    is only the base weight; a bitsandbytes 4-bit layer, whose `.weight` is packed) is probed:
    W.T = module(I) - module(0), over the identity in chunks of PROBE_ROWS rows, in the dtype and on
    the device of the module's floating-point parameters. Exact up to the rounding of x @ W.T.
    """
    w = getattr(module, "weight", None)
    plain = type(module) is nn.Linear or type(module).__name__ == "Conv1D"
    if plain and type(w) is nn.Parameter and w.is_floating_point():
        return w.T if transposed else w
    floats = [p for p in module.parameters() if p.is_floating_point()]
    dtype = floats[0].dtype if floats else torch.float32
    device = floats[0].device if floats else torch.device("cpu")
    n_in = getattr(module, "in_features", None)
    if n_in is None:
        base = getattr(module, "base_layer", module)
        bw = getattr(base, "weight", None)
        if bw is None:
            raise TypeError(f"cannot tell the input width of {type(module).__name__}")
        n_in = bw.shape[0] if transposed else bw.shape[-1]
    zero = module(torch.zeros((1, n_in), dtype=dtype, device=device))  # (1, out): the bias
    cols = []
    for a in range(0, n_in, PROBE_ROWS):
        rows = torch.arange(a, min(a + PROBE_ROWS, n_in), device=device)
        eye = torch.zeros((len(rows), n_in), dtype=dtype, device=device)
        eye[torch.arange(len(rows), device=device), rows] = 1.0  # rows a.. of the identity, built alone
        cols.append(module(eye) - zero)  # (rows, out) = rows of W.T
    return torch.cat(cols, 0).T


def _get(root: nn.Module, path: str) -> Any:
    obj: Any = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def base_model(model: nn.Module) -> nn.Module:
    """The plain causal-LM module under a PEFT wrapper (the model itself otherwise)."""
    return _unwrap(model)


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain causal-LM module under a PEFT wrapper (`PeftModel.get_base_model()`)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def arch_spec(config: Any) -> ArchSpec:
    """The `ArchSpec` of a transformers config; a clear error for unsupported families."""
    cfg = getattr(config, "text_config", None) or config
    model_type = cfg.model_type
    if model_type not in LAYOUTS:
        raise UserError(
            f"model type '{model_type}' is not supported yet; supported: {', '.join(sorted(LAYOUTS))}"
        )
    layout = LAYOUTS[model_type]
    n_heads = _first(cfg, "num_attention_heads", "n_head")
    d_model = _first(cfg, "hidden_size", "n_embd")
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    head_dim = getattr(cfg, "head_dim", None) or d_model // n_heads
    return ArchSpec(
        family=layout.family,
        model_type=model_type,
        n_layers=_first(cfg, "num_hidden_layers", "n_layer"),
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        d_model=d_model,
        vocab_size=cfg.vocab_size,
        tied_embeddings=bool(getattr(config, "tie_word_embeddings", getattr(cfg, "tie_word_embeddings", False))),
        layout=layout,
        final_logit_softcap=getattr(cfg, "final_logit_softcapping", None) or None,
    )


def _first(cfg: Any, *names: str) -> int:
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return int(v)
    raise AttributeError(f"config has none of {names}")
