"""Test helpers: independent reference computations for known-answer tests (one plain HF forward per
prompt), `run_cli`, the in-process CLI runner every CLI test uses, and `load_script`, which imports a script
of experiments/ or scripts/ (not a package) as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

REPO = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """The script at REPO / `relative` (e.g. "experiments/families/shd_crossover.py") as a module named by its stem,
    registered in sys.modules (dataclasses look their module up while a class is made)."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def plain_next_logprobs(lm, text: str) -> torch.Tensor:
    """log-softmax of the next token after `text`: no padding, no batching, no logits_to_keep."""
    ids = lm.tokenizer.encode(text, add_special_tokens=False)
    bos = lm.tokenizer.bos_token_id
    if bos is not None and lm.tokenizer("a")["input_ids"][0] == bos and ids[:1] != [bos]:
        ids = [bos] + ids
    logits = lm.model(torch.tensor([ids])).logits[0, -1].double()
    return torch.log_softmax(logits, -1)


@torch.no_grad()
def plain_sequence_logprob(lm, context_ids: list[int], cont_ids: list[int]) -> float:
    """sum_i log P(cont_i | context, cont_<i) from one full forward."""
    ids = torch.tensor([context_ids + cont_ids])
    lp = torch.log_softmax(lm.model(ids).logits[0].double(), -1)
    n = len(context_ids)
    return float(sum(lp[n - 1 + i, t] for i, t in enumerate(cont_ids)))


@torch.no_grad()
def plain_resid_posts(lm, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """resid_post of every block at the last position from one plain HF forward, (layer, d_model),
    and the last-position logits (vocab,). HF's hidden_states[1:L] are blocks 0..L-2; its last hidden
    state is after the final norm, so the last block's output is read with a forward hook."""
    seen: dict[str, torch.Tensor] = {}
    h = lm.spec.layers(lm.model)[-1].register_forward_hook(
        lambda m, i, o: seen.__setitem__("out", o[0] if isinstance(o, tuple) else o))
    try:
        out = lm.model(torch.tensor([ids]), output_hidden_states=True)
    finally:
        h.remove()
    states = [hs[0, -1] for hs in out.hidden_states[1:lm.spec.n_layers]] + [seen["out"][0, -1]]
    return torch.stack(states), out.logits[0, -1]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `interp ARGS` in-process: (exit code, stdout, stderr) of this command alone (what the test
    printed before, e.g. a progress bar of saving a model, is discarded first)."""
    import pytest

    from interp.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


def assert_close_reordered(got: torch.Tensor, want: torch.Tensor, ulps: int = 64) -> None:
    """Equal up to floating-point summation order: a different batch size changes how BLAS blocks
    each matmul, so every element is a sum taken in another order. Its error is then a few units in
    the last place (ulp) of the largest magnitude it was summed with, and it grows through the
    layers. Tolerance: atol = ulps * eps(dtype) * max|want| (fp32: eps = 1.19e-7), rtol = 0; a wrong
    row or position differs by O(max|want|), far above it."""
    eps = torch.finfo(want.dtype).eps
    scale = float(want.abs().max()) if want.numel() else 1.0
    torch.testing.assert_close(got, want, atol=ulps * eps * max(scale, 1.0), rtol=0.0)
