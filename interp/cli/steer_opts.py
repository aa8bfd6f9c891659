"""--steer / --steer-layer / --steer-alpha / --steer-mode / --steer-reference / --steer-tile, declared once
(`steer_options`), for the commands that score or sample with a model (eval-animal, reverse-link,
gen-numbers) and for the teacher of `distill --kind kd`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

import typer

from interp.cli.common import bundle_options
from interp.cli.params import Float, Int
from interp.errors import UserError

if TYPE_CHECKING:
    from interp.models.loaded import LoadedModel

SteerMode = Literal["add", "project", "replace"]


@dataclass(frozen=True)
class SteerOptions:
    """Steering of the command's model (`interp.interventions.steering`): none unless --steer is given."""

    steer: Optional[Path] = None
    layer: Optional[int] = None
    alpha: float = 1.0
    mode: SteerMode = "add"
    reference: Optional[str] = None
    tile: bool = False

    def check(self, samples: bool = False) -> None:
        """One line, before any model loads, for what cannot work (`samples`: the command samples with a
        KV cache, which `replace` cannot follow)."""
        if self.steer is None:
            given = [f for f, v in (("--steer-layer", self.layer), ("--steer-reference", self.reference)) if v is not None]
            if given or self.alpha != 1.0 or self.mode != "add" or self.tile:
                raise UserError(f"{(given or ['--steer-alpha / --steer-mode / --steer-tile'])[0]} needs --steer FILE (a vector.pt of "
                                "`interp steer-vector`)")
            return
        if self.layer is None:
            raise UserError("--steer needs --steer-layer L (the block whose output is steered, 0-based)")
        if self.reference is not None and self.mode != "replace":
            raise UserError("--steer-reference is the model whose component `--steer-mode replace` puts back")
        if samples and self.mode == "replace":
            raise UserError("--steer-mode replace runs the reference on full sequences; it cannot sample with a KV "
                            "cache (use add or project here)")
        from interp.interventions.steering import SteeringVector

        SteeringVector.load(self.steer).at(self.layer)  # a file that is no vector, or a layer it lacks: refused here

    def apply(self, lm: LoadedModel, load: Callable[[str], LoadedModel]) -> LoadedModel:
        """`lm` with the steering attached for the rest of the process (its summary records it); `lm` itself
        without --steer. `load` loads the reference model of `replace`."""
        from interp.interventions.steering import Steering, SteeringVector

        if self.steer is None:
            return lm
        if lm.engine.describe() is not None:
            raise UserError("--steer hooks the local model's blocks; it cannot steer a hosted model (--remote / --serve)")
        if lm.engine.sampler() is not None:
            raise UserError("--steer hooks the local model's blocks; samples drawn by a server (--engine openai) "
                            "would not be steered")
        vec = SteeringVector.load(self.steer)
        assert self.layer is not None
        ref = None
        if self.mode == "replace":
            name = self.reference or vec.meta.get("model_b")
            if not name:
                raise UserError("--steer-mode replace: give --steer-reference MODEL (the vector records no model_b)")
            ref = load(name)
        layers = list(range(lm.spec.n_layers)) if self.tile else self.layer
        steering = Steering(lm, vec.at(self.layer), layers, self.alpha, self.mode, ref).attach()
        lm.extra["steering"] = {**steering.describe(), "tiled_from": self.layer if self.tile else None, "file": str(self.steer),
                                "sha256": hashlib.sha256(self.steer.read_bytes()).hexdigest(),
                                "vector": {k: vec.meta.get(k) for k in ("model_a", "model_b", "system_a", "system_b",
                                                                         "positions", "n_prompts", "prompts")}}
        return lm

    def inputs(self) -> dict[str, Any]:
        """For summary.json's inputs."""
        return {} if self.steer is None else {"steer": str(self.steer), "steer_layer": self.layer,
                                              "steer_alpha": self.alpha, "steer_mode": self.mode,
                                              "steer_reference": self.reference, "steer_tile": self.tile}


_STEER_PARAMS: dict[str, tuple[Any, Any]] = {
    "steer": (Optional[Path], typer.Option(None, "--steer", exists=True, dir_okay=False, readable=True,
                                           help="steering vector (vector.pt of `interp steer-vector`)")),
    "layer": (Optional[int], Int(None, "--steer-layer", help="block whose output (resid_post) is steered, 0-based", ge=0)),
    "alpha": (float, Float(1.0, "--steer-alpha", help="add: h + alpha v; project: h - alpha (h.u) u", ge=-100, le=100)),
    "mode": (SteerMode, typer.Option("add", "--steer-mode", help="add | project (remove the component along v) | "
                                                                "replace (the reference model's component along v)")),
    "reference": (Optional[str], typer.Option(None, "--steer-reference",
                                              help="replace: the model whose component along v is put back "
                                                   "(default: the vector's model B)")),
    "tile": (bool, typer.Option(False, "--steer-tile", help="steer every block with v[--steer-layer] (the reference's "
                                                           "tiled vector) instead of that block alone")),
}

steer_options = bundle_options("steering", _STEER_PARAMS, SteerOptions)
"""Decorator for a command with a `steering: SteerOptions` parameter."""
