import pytest
import torch

from interp.errors import UserError
from interp.models.arch import arch_spec

EXPECTED = {  # tiny configs in interp/models/tiny.py
    "llama": dict(n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, d_model=64, tied_embeddings=True),
    "gemma3": dict(n_layers=2, n_heads=4, n_kv_heads=1, head_dim=16, d_model=64, tied_embeddings=True),
    "gpt2": dict(n_layers=2, n_heads=4, n_kv_heads=4, head_dim=16, d_model=64, tied_embeddings=True),
}


def test_spec_shapes(tiny):
    spec = tiny.spec
    for k, v in EXPECTED[spec.family].items():
        assert getattr(spec, k) == v, k


def test_module_paths_resolve_and_o_proj_input_is_z(tiny):
    spec, model = tiny.spec, tiny.model
    assert len(spec.layers(model)) == spec.n_layers
    seen = {}
    h = spec.module(model, "o_proj", layer=1).register_forward_pre_hook(lambda m, a: seen.update(z=a[0].shape))
    try:
        model(torch.tensor([[5, 6, 7]]))
    finally:
        h.remove()
    assert seen["z"] == (1, 3, spec.n_heads * spec.head_dim)
    assert spec.module(model, "embed").weight.shape[0] == spec.vocab_size
    assert spec.module(model, "lm_head") is model.lm_head
    spec.module(model, "mlp", layer=0)
    spec.module(model, "final_norm")


def test_layer_out_of_range_is_user_error(tiny_llama):
    with pytest.raises(UserError, match="out of range"):
        tiny_llama.spec.module(tiny_llama.model, "mlp", layer=7)


def test_unknown_family_is_user_error():
    class Cfg:
        model_type = "mamba"

    with pytest.raises(UserError, match="not supported"):
        arch_spec(Cfg())


def test_spec_through_peft_wrapper(tiny_llama):
    from peft import LoraConfig, get_peft_model

    from interp.models.tiny import tiny_model

    model, _ = tiny_model("llama")
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    spec = arch_spec(peft_model.config)
    assert len(spec.layers(peft_model)) == 2
    assert spec.module(peft_model, "o_proj", layer=0) is model.model.layers[0].self_attn.o_proj
