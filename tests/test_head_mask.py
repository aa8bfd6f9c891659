"""Head masks zero a head's slice of the o_proj input: in forward, generate and training, every family."""

import copy

import pytest
import torch
import torch.nn as nn

from interp.errors import UserError
from interp.interventions.head_mask import HeadMask

TEXT = "The owl sat on the branch and counted 1 2 3 stars"


def _ids(lm):
    return torch.tensor([lm.tokenizer.encode(TEXT, add_special_tokens=False)])


def surgered(lm, heads):
    """Reference: a copy whose o_proj weights no longer read the heads' z slices (no hooks)."""
    m = copy.deepcopy(lm.model)
    d = lm.spec.head_dim
    with torch.no_grad():
        for layer, head in heads:
            o = lm.spec.module(m, "o_proj", layer=layer)
            sl = slice(head * d, (head + 1) * d)
            if isinstance(o, nn.Linear):  # weight (out, in)
                o.weight[:, sl] = 0
            else:  # GPT-2 Conv1D: weight (in, out)
                o.weight[sl, :] = 0
    return m


@torch.no_grad()
def test_empty_mask_leaves_logits_identical(tiny):
    ids = _ids(tiny)
    base = tiny.model(ids).logits
    with HeadMask(tiny, []):
        assert torch.equal(tiny.model(ids).logits, base)


@torch.no_grad()
def test_one_head_equals_zeroing_its_slice_by_hand(tiny):
    ids, heads = _ids(tiny), [(1, 2)]
    base = tiny.model(ids).logits
    with HeadMask(tiny, heads):
        masked = tiny.model(ids).logits
    # by hand: a pre-hook written here that overwrites z[..., 2*d:3*d] of layer 1's o_proj
    d = tiny.spec.head_dim

    def hand(module, args):
        z = args[0].clone()
        z[..., 2 * d:3 * d] = 0
        return (z,)

    h = tiny.spec.module(tiny.model, "o_proj", layer=1).register_forward_pre_hook(hand)
    try:
        by_hand = tiny.model(ids).logits
    finally:
        h.remove()
    assert torch.equal(masked, by_hand)
    torch.testing.assert_close(masked, surgered(tiny, heads)(ids).logits, rtol=0, atol=1e-5)
    assert (masked - base).abs().max() > 1e-3  # the head mattered
    assert torch.equal(tiny.model(ids).logits, base)  # hooks gone after the block


@torch.no_grad()
def test_mask_acts_during_generate(tiny):
    ids, heads = _ids(tiny), [(0, 1), (1, 3)]
    kw = dict(max_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True,
              pad_token_id=tiny.tokenizer.pad_token_id)
    base = torch.stack(tiny.model.generate(ids, **kw).scores)
    with HeadMask(tiny, heads):
        masked = torch.stack(tiny.model.generate(ids, **kw).scores)  # uses the KV cache after step 1
    ref = torch.stack(surgered(tiny, heads).generate(ids, **kw).scores)
    assert masked.shape == ref.shape
    torch.testing.assert_close(masked, ref, rtol=0, atol=1e-4)
    assert (masked - base).abs().max() > 1e-3


def test_mask_acts_during_training_gqa(tiny_llama):
    """Llama tiny: 4 query heads on 2 kv heads. A masked head's q_proj rows get no gradient;
    its kv head (shared with an unmasked head) still does."""
    lm, d = tiny_llama, tiny_llama.spec.head_dim
    ids = _ids(lm)
    lm.model.zero_grad()
    with HeadMask(lm, [(0, 2)]):
        lm.model(ids, labels=ids).loss.backward()
    q = lm.spec.module(lm.model, "q_proj", layer=0).weight.grad
    v = lm.spec.module(lm.model, "v_proj", layer=0).weight.grad
    assert q[2 * d:3 * d].abs().max() == 0
    assert q[3 * d:4 * d].abs().max() > 0 and v[d:2 * d].abs().max() > 0  # head 3 shares kv head 1
    lm.model.zero_grad(set_to_none=True)


def test_hooks_removed_on_exception(tiny_llama):
    o = tiny_llama.spec.module(tiny_llama.model, "o_proj", layer=0)
    with pytest.raises(RuntimeError):
        with HeadMask(tiny_llama, [(0, 0)]):
            assert len(o._forward_pre_hooks) == 1
            raise RuntimeError("boom")
    assert len(o._forward_pre_hooks) == 0


@pytest.mark.parametrize("head", [(2, 0), (0, 4), (-1, 0)])
def test_nonexistent_head_is_a_user_error(tiny_llama, head):
    with pytest.raises(UserError, match="does not exist"):
        HeadMask(tiny_llama, [head])
