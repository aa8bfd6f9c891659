"""Models given as unmerged PEFT adapter folders: every weight-reading computation uses the weights
the model actually applies (base + LoRA), not the base weight that `o_proj.weight` still returns."""

from __future__ import annotations

import pytest
import torch

from interp.mech.activations import cache_last, hook
from interp.mech.attribution import decompose_residual, decomposition_hooks, logit_attribution
from interp.models import load_model
from interp.models.arch import effective_weight
from interp.models.engine import engine_for
from interp.models.tiny import tiny_model

PROMPTS = [[5, 6, 7, 8, 9, 10], [20, 21, 22, 23, 24, 25]]


def _adapter(tmp_path, family: str, targets: list[str]) -> tuple:
    """An adapter folder with LoRA on `targets` (random lora_B, so it changes the model) and the
    same model merged into plain weights."""
    from peft import LoraConfig, get_peft_model

    base, _ = tiny_model(family)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False,
                                           fan_in_fan_out=family == "gpt2"))
    with torch.random.fork_rng():
        torch.manual_seed(1)
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.data.normal_(0.0, 0.5)
    peft.peft_config["default"].base_model_name_or_path = f"tiny-{family}"
    peft.save_pretrained(tmp_path / "adapter")
    lm = load_model(str(tmp_path / "adapter"))
    merged = load_model(str(tmp_path / "adapter"))
    merged.model = merged.model.merge_and_unload()
    return lm, merged


@pytest.mark.parametrize("family, targets", [("llama", ["q_proj", "v_proj", "o_proj"]), ("gpt2", ["c_attn", "c_proj"])])
def test_out_weight_and_value_streams_are_the_effective_ones(tmp_path, tmp_home, family, targets):
    lm, merged = _adapter(tmp_path, family, targets)
    spec = lm.spec
    assert type(lm.model).__name__ == "PeftModel"
    for layer in range(spec.n_layers):
        base_w = spec.module(lm.model, "o_proj", layer).weight
        base_w = base_w.T if spec.o_proj_transposed else base_w
        w_eff, w_merged = spec.out_weight(lm.model, layer), spec.out_weight(merged.model, layer)
        assert (w_eff - base_w).abs().max() > 0.1  # the LoRA on o_proj matters (what .weight ignored)
        torch.testing.assert_close(w_eff, w_merged, atol=1e-5, rtol=1e-5)
        hidden = torch.randn(2, 5, spec.d_model, generator=torch.Generator().manual_seed(layer))
        with torch.no_grad():
            torch.testing.assert_close(spec.value_streams(lm.model, layer, hidden),
                                       spec.value_streams(merged.model, layer, hidden), atol=1e-4, rtol=1e-4)


def test_dla_of_an_adapter_sums_to_its_logit_difference_and_equals_the_merged_models(tmp_path, tmp_home):
    lm, merged = _adapter(tmp_path, "llama", ["q_proj", "v_proj", "o_proj"])
    out = {}
    for name, m in (("adapter", lm), ("merged", merged)):
        logits, acts = cache_last(m, PROMPTS, decomposition_hooks(m.spec))
        dec = decompose_residual(m.model, m.spec, acts)
        out[name] = logit_attribution(m.model, m.spec, dec, 40, 41, logits)
    a = out["adapter"]
    torch.testing.assert_close(a.total, a.actual, atol=1e-4, rtol=0)
    torch.testing.assert_close(a.contributions, out["merged"].contributions, atol=1e-4, rtol=0)


def test_nnsight_head_results_use_the_effective_w_o(tmp_path, tmp_home):
    lm, merged = _adapter(tmp_path, "llama", ["o_proj"])
    names = [hook.result(0), hook.result(1)]
    tokens = torch.tensor(PROMPTS)
    _, got = engine_for(lm, "nnsight").activations(tokens, names)
    _, want = engine_for(merged, "nnsight").activations(tokens, names)
    for n in names:
        torch.testing.assert_close(got[n], want[n], atol=1e-5, rtol=1e-5)


def test_effective_weight_of_plain_layers_is_the_weight_itself():
    lin = torch.nn.Linear(3, 2)
    assert effective_weight(lin) is lin.weight
    from transformers.pytorch_utils import Conv1D

    conv = Conv1D(2, 3)  # stored (in, out)
    w = effective_weight(conv, transposed=True)
    assert w.shape == (2, 3) and torch.equal(w, conv.weight.T)
