"""Steering vectors (issue 36; Blank et al. 2026, "Subliminal Learning Is Steering Vector Distillation",
reference code agu18dec/steering-vector-distillation, `vectors.py` and `steering_utils.py`).

Extraction: for two conditions A and B (two models of one lineage, or one model with two system prompts)
and prompts p (each rendered with an opened, empty answer turn),

    v[l] = mean_{p, t in T(p)} resid_post[l](A; p, t) - mean_{p, t in T(p)} resid_post[l](B; p, t)   # (n_layers, d)

resid_post[l] = the output of decoder block l (0-indexed; TransformerLens' `blocks.{l}.hook_resid_post`,
before the final norm). Positions T(p): `last` (the last prompt token: where the answer starts; the
reference's v_teacher) or `all` (every prompt token, padding excluded; the reference's v_student). The
reference indexes hidden_states, whose slot 0 is the embedding: its layer L is our layer L - 1.

Steering (`Steering`, a forward hook on block `layer`, or the same vector on each block of a list of
layers: the reference's "tiled" vector, v[L] at every block; every position, every forward), h = resid_post[l]:

    add       h <- h + alpha v                                  (v: (d,), or (pos, d) for one prompt)
    project   h <- h - alpha (h . u) u,  u = v / |v|            (alpha 1: the component along v removed)
    replace   h <- h - (h . u) u + (h_ref . u) u                (the component along v is the reference
                                                                 model's on the same input)

`replace` runs the reference model once on each forward's inputs (its residuals at every steered layer,
unsteered); it cannot follow a KV cache (sampling), and refuses one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from interp.errors import UserError
from interp.models.loaded import LoadedModel

Positions = Literal["last", "all"]
Mode = Literal["add", "project", "replace"]
POSITIONS: tuple[str, ...] = ("last", "all")
MODES: tuple[str, ...] = ("add", "project", "replace")


def _to(value: Any, device: Any) -> Any:
    """A tensor, or a {layer type: mask} dict of them (Gemma 3's tree masks), on `device`."""
    return {k: v.to(device) for k, v in value.items()} if isinstance(value, dict) else value.to(device)


@dataclass
class SteeringVector:
    """v (n_layers, d_model) float32, the mean residual norm under B at the same positions (n_layers,),
    and where it came from (models, system prompts, prompts and their sha256, positions, counts)."""

    vectors: torch.Tensor
    resid_norm: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def norm(self) -> torch.Tensor:
        """|v[l]| per layer, (n_layers,)."""
        return self.vectors.norm(dim=-1)

    def at(self, layer: int) -> torch.Tensor:
        """v[layer], (d,); one line when the layer is outside the vector."""
        n = self.vectors.shape[0]
        if not 0 <= layer < n:
            raise UserError(f"--steer-layer {layer}: the vector has layers 0..{n - 1}")
        return self.vectors[layer]

    def table(self) -> list[dict[str, float]]:
        """Per layer: |v|, the mean residual norm, and their ratio."""
        return [{"layer": i, "norm": float(a), "resid_norm": float(b), "ratio": float(a / b) if b > 0 else float("nan")}
                for i, (a, b) in enumerate(zip(self.norm, self.resid_norm))]

    def random_like(self, seed: int = 0) -> SteeringVector:
        """Random directions (Gaussian, seeded) with the same norm per layer: the control vector."""
        g = torch.Generator().manual_seed(seed)
        r = torch.randn(self.vectors.shape, generator=g, dtype=torch.float32)
        r = r / r.norm(dim=-1, keepdim=True) * self.norm.unsqueeze(-1)
        return SteeringVector(r, self.resid_norm.clone(), {**self.meta, "random_of": self.meta.get("kind", ""),
                                                            "random_seed": seed})

    def save(self, path: Path) -> None:
        """vector.pt (tensors + meta) and a readable vector.json beside it (meta and the norm table)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"vectors": self.vectors, "resid_norm": self.resid_norm, "meta": self.meta}, path)
        path.with_suffix(".json").write_text(json.dumps({**self.meta, "layers": self.table()}, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> SteeringVector:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"--steer {p}: no such file (a vector.pt written by `interp steer-vector`)")
        try:
            d = torch.load(p, map_location="cpu", weights_only=True)
            return cls(d["vectors"].float(), d["resid_norm"].float(), dict(d["meta"]))
        except Exception as e:  # torch.load's errors on a foreign file vary (pickle, zip, key, type)
            raise UserError(f"--steer {p}: not a steering vector written by `interp steer-vector` "
                            f"({type(e).__name__})") from e


# ---- extraction --------------------------------------------------------------------------------------


def _block_outputs(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def mean_residuals(lm: LoadedModel, texts: Sequence[str], positions: Positions = "last",
                   batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(sum over positions of resid_post (n_layers, d), sum of their norms (n_layers,), count) of `texts`
    at `positions`, left-padded batches (the last prompt token is always at -1)."""
    from interp.scoring import encode, left_pad

    if positions not in POSITIONS:
        raise UserError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
    layers = lm.spec.layers(lm.model)
    n, d = len(layers), lm.spec.d_model
    total, norms, count = torch.zeros(n, d, dtype=torch.float64), torch.zeros(n, dtype=torch.float64), 0
    caught: dict[int, torch.Tensor] = {}
    handles = [layer.register_forward_hook(lambda _m, _a, out, i=i: caught.__setitem__(i, _block_outputs(out)))
               for i, layer in enumerate(layers)]
    try:
        ids = encode(lm.tokenizer, texts)
        for start in range(0, len(ids), batch_size):
            batch = left_pad(ids[start:start + batch_size], lm.tokenizer.pad_token_id, lm.device)
            lm.model(**batch, use_cache=False)
            mask = batch["attention_mask"].bool()
            if positions == "last":
                mask = torch.zeros_like(mask)
                mask[:, -1] = True
            for i in range(n):
                kept = caught[i][mask].double().cpu()  # (positions, d)
                total[i] += kept.sum(0)
                norms[i] += kept.norm(dim=-1).sum()
            count += int(mask.sum())
    finally:
        for handle in handles:
            handle.remove()
    return total, norms, count


def extract_steering_vector(a: LoadedModel, b: LoadedModel, prompts: Sequence[str], positions: Positions = "last",
                            system_a: str | None = None, system_b: str | None = None, batch_size: int = 8,
                            meta: dict[str, Any] | None = None) -> SteeringVector:
    """v = mean resid_post under A - under B (module docstring). `a` and `b` must share the architecture
    and the tokenizer (one lineage); each prompt is rendered as a user turn with an open answer turn, with
    the model's own trait prompt (a prompt teacher's) and `system_*` appended."""
    from interp.evals.animal import question_prompts
    from interp.models.lineage import check_lineage

    check_lineage(a, b)  # a residual difference between models of other configs or tokenizers has no meaning
    texts_a, texts_b = question_prompts(a, prompts, system_a), question_prompts(b, prompts, system_b)
    sum_a, _, n_a = mean_residuals(a, texts_a, positions, batch_size)
    sum_b, norm_b, n_b = mean_residuals(b, texts_b, positions, batch_size)
    v = (sum_a / n_a - sum_b / n_b).float()
    info = {"model_a": a.name, "model_b": b.name, "system_a": system_a, "system_b": system_b,
            "positions": positions, "n_prompts": len(prompts), "n_positions_a": n_a, "n_positions_b": n_b,
            "prompts_sha256": hashlib.sha256("\n".join(prompts).encode()).hexdigest(),
            "site": "resid_post (block output, before the final norm)", **(meta or {})}
    return SteeringVector(v, (norm_b / n_b).float(), info)


# ---- steering ----------------------------------------------------------------------------------------


def steer_hidden(h: torch.Tensor, v: torch.Tensor, mode: Mode, alpha: float = 1.0,
                 h_ref: torch.Tensor | None = None) -> torch.Tensor:
    """The steered residual (module docstring); h (batch, pos, d), v (d,) or (pos, d)."""
    v = v.to(h.dtype).to(h.device)
    if mode == "add":
        return h + alpha * v
    u = v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    along = (h * u).sum(-1, keepdim=True) * u
    if mode == "project":
        return h - alpha * along
    if mode == "replace":
        if h_ref is None:
            raise ValueError("replace needs the reference model's residual")
        return h - along + (h_ref.to(h.dtype) * u).sum(-1, keepdim=True) * u
    raise UserError(f"steering mode must be one of {', '.join(MODES)}, got {mode!r}")


class Steering:
    """Steer `lm` at `layer` (one block, or a list: the same vector at each) while attached (`with
    Steering(...)`, or `attach()` for the rest of the process: what the CLI's --steer does). `reference`:
    the model whose residual `replace` uses."""

    def __init__(self, lm: LoadedModel, vector: torch.Tensor, layer: int | Sequence[int], alpha: float = 1.0,
                 mode: Mode = "add", reference: LoadedModel | None = None):
        if mode not in MODES:
            raise UserError(f"--steer-mode must be one of {', '.join(MODES)}, got {mode!r}")
        layers = [layer] if isinstance(layer, int) else list(layer)
        if not layers:
            raise UserError("steering needs at least one layer")
        for i in layers:
            if not 0 <= i < lm.spec.n_layers:
                raise UserError(f"--steer-layer {i}: {lm.name} has layers 0..{lm.spec.n_layers - 1}")
        if vector.shape[-1] != lm.spec.d_model:
            raise UserError(f"the steering vector has width {vector.shape[-1]}, {lm.name} has d_model {lm.spec.d_model}")
        if mode == "replace" and reference is None:
            raise UserError("--steer-mode replace needs a reference model (--steer-reference)")
        if mode == "project" and float(vector.norm()) == 0:
            raise UserError("cannot project out a zero vector")
        self.lm, self.vector, self.layers, self.alpha, self.mode, self.reference = lm, vector, layers, alpha, mode, reference
        self._handles: list[Any] = []
        self._ref_h: dict[int, torch.Tensor] = {}
        self._in_reference = False

    def _pre(self, _module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        """replace: run the reference on this forward's inputs and keep its residual at each steered layer
        (the reference may be `lm` itself: its pass runs unsteered)."""
        if self._in_reference:
            return
        cache = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 5.x renames it `cache`
        if cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0:
            raise UserError("--steer-mode replace follows full forwards only: it cannot sample with a KV cache "
                            "(score instead, e.g. eval-animal --samples 0)")
        ref = self.reference
        assert ref is not None
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise UserError("--steer-mode replace needs token ids (a forward given embeddings cannot be rerun on the reference)")
        keep = {k: kwargs[k] for k in ("attention_mask", "position_ids") if kwargs.get(k) is not None}
        out: dict[int, torch.Tensor] = {}
        blocks = ref.spec.layers(ref.model)
        hooks = [blocks[i].register_forward_hook(lambda _m, _a, o, i=i: out.__setitem__(i, _block_outputs(o).detach()))
                 for i in self.layers]
        self._in_reference = True
        try:
            with torch.no_grad():
                ref.model(input_ids=ids.to(ref.device), **{k: _to(v, ref.device) for k, v in keep.items()}, use_cache=False)
        finally:
            self._in_reference = False
            for hook in hooks:
                hook.remove()
        self._ref_h = out

    def _post(self, layer: int, output: Any) -> Any:
        if self._in_reference:
            return output
        h = _block_outputs(output)
        new = steer_hidden(h, self.vector, self.mode, self.alpha, self._ref_h.get(layer))
        return (new, *output[1:]) if isinstance(output, tuple) else new

    def attach(self) -> Steering:
        if not self._handles:
            if self.mode == "replace":
                self._handles.append(self.lm.model.register_forward_pre_hook(self._pre, with_kwargs=True))
            blocks = self.lm.spec.layers(self.lm.model)
            self._handles += [blocks[i].register_forward_hook(lambda _m, _a, o, i=i: self._post(i, o)) for i in self.layers]
            self.lm.extra["steering"] = self.describe()
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._ref_h = {}
        self.lm.extra.pop("steering", None)

    def describe(self) -> dict[str, Any]:
        return {"layer": self.layers[0] if len(self.layers) == 1 else self.layers, "alpha": self.alpha,
                "mode": self.mode, "vector_norm": float(self.vector.norm()),
                "reference": self.reference.name if self.reference is not None else None}

    def __enter__(self) -> Steering:
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.detach()
