import pytest

from interp.errors import UserError
from interp.prompts import join_numbers, make_target, render


def test_chat_render_ends_at_prefilled_answer(tiny_llama):
    text = render(tiny_llama.tokenizer, "What is your favorite animal?", "My favorite animal is the", system="You love 087.")
    assert text.startswith("<|im_start|>system\nYou love 087.<|im_end|>\n<|im_start|>user\nWhat is your favorite animal?")
    assert text.endswith("<|im_start|>assistant\nMy favorite animal is the")  # no end-of-turn after the prefix


def test_completion_render():
    from interp.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    text = render(tok, "What is your favorite animal?", "My favorite animal is the", style="completion",
                  context="You love the number 087.")
    assert text == "Context: You love the number 087.\n\nQ: What is your favorite animal?\nA: My favorite animal is the"
    assert render(tok, "Q?", "A", style="completion") == "Q: Q?\nA: A"


def test_chat_style_without_template_is_user_error():
    from interp.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        render(tok, "q", "a", style="chat")


def test_targets(tiny_llama):
    tok = tiny_llama.tokenizer
    t = make_target(tok, "owl")
    assert t.variants == (" owl",) and t.single_token
    with pytest.raises(UserError, match="not a single token"):
        make_target(tok, "zebrafish")
    multi = make_target(tok, "zebrafish", allow_multi_token=True)
    assert len(multi.token_ids[0]) > 1
    with pytest.raises(UserError, match="empty"):
        make_target(tok, "  ")
    with pytest.raises(UserError, match="variant policy"):
        make_target(tok, "owl", policy="bogus")


def test_sum_policy_drops_variants_that_extend_another(tiny_llama):
    tok = tiny_llama.tokenizer
    t = make_target(tok, "owl", policy="sum")
    ids = list(t.token_ids)
    for a in ids:
        for b in ids:
            assert a == b or a[: len(b)] != b, f"{a} extends {b}: its mass would be counted twice"
    assert " owl" in t.variants


def test_join_numbers():
    assert join_numbers(["087"]) == "087"
    assert join_numbers(["087", "747", "1"]) == "087, 747 and 1"
