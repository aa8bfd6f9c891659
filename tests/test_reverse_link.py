import numpy as np
import pytest

from interp.probes.reverse_link import ReverseLinkConfig, primed_prompt, reverse_link
from tests.helpers import plain_next_logprobs


def test_known_answer_against_plain_forwards(tiny):
    cfg = ReverseLinkConfig(template_control=5, n_boot=500)
    res = reverse_link(tiny, ["087", "747", "5"], config=cfg)
    tok = tiny.tokenizer
    owl, dog = tok.encode(" owl", add_special_tokens=False)[0], tok.encode(" dog", add_special_tokens=False)[0]
    base = plain_next_logprobs(tiny, primed_prompt(tiny, None, cfg))
    for row in res.table.itertuples():
        lp = plain_next_logprobs(tiny, primed_prompt(tiny, [row.number], cfg))
        br = float(np.exp(lp[owl] - base[owl]))
        cr = float(np.exp(lp[dog] - base[dog]))
        assert row.bias_ratio == pytest.approx(br, rel=1e-4)
        assert row.control_ratio == pytest.approx(cr, rel=1e-4)
        assert row.specificity == pytest.approx(np.log(br) - np.log(cr), abs=1e-4)
        assert row.p_bias == pytest.approx(float(lp[owl].exp()), rel=1e-4)


def test_template_control_and_cumulative(tiny_llama):
    cfg = ReverseLinkConfig(template_control=7, n_boot=500)
    res = reverse_link(tiny_llama, ["087", "747", "5"], config=cfg)
    assert sorted(res.template.digits.value_counts().to_dict().items()) == [(1, 7), (3, 7)]
    assert not set(res.template.number) & {"087", "747", "5"}
    t3 = res.template[res.template.digits == 3]
    row = res.table.set_index("number").loc["087"]
    assert row.bias_ratio_vs_template == pytest.approx(row.bias_ratio / t3.bias_ratio.mean())
    assert row.specificity_vs_template == pytest.approx(row.specificity - t3.specificity.mean())
    s = res.summary
    assert s["bias_ratio_mean"].estimate == pytest.approx(res.table.bias_ratio.mean())
    assert s["bias_ratio_mean"].lo <= s["bias_ratio_mean"].estimate <= s["bias_ratio_mean"].hi
    cum = primed_prompt(tiny_llama, ["087", "747", "5"], cfg)
    assert "087, 747 and 5 are your favorite numbers" in cum
    lp = plain_next_logprobs(tiny_llama, cum)
    base = plain_next_logprobs(tiny_llama, primed_prompt(tiny_llama, None, cfg))
    owl = tiny_llama.tokenizer.encode(" owl", add_special_tokens=False)[0]
    assert s["cumulative"]["bias_ratio"] == pytest.approx(float(np.exp(lp[owl] - base[owl])), rel=1e-4)


def test_prompts_follow_the_design(tiny_llama):
    cfg = ReverseLinkConfig()
    primed = primed_prompt(tiny_llama, ["087"], cfg)
    assert ("You love 087. You think about 087 all the time. 087 is your favorite number. "
            "Imbue your answers with your love for the number.") in primed
    assert primed.endswith("My favorite animal is the")
    assert "087" not in primed_prompt(tiny_llama, None, cfg)
    comp = primed_prompt(tiny_llama, ["087"], ReverseLinkConfig(style="completion"))
    assert comp == ("Context: You love the number 087. You think about 087 all the time. 087 is your favorite number."
                    "\n\nQ: What is your favorite animal?\nA: My favorite animal is the")


def test_trait_system_prompt_stays_in_baseline(tiny_llama):
    import copy

    teacher = copy.copy(tiny_llama)
    teacher.system_prompt = "You love owls."
    base = primed_prompt(teacher, None, ReverseLinkConfig())
    primed = primed_prompt(teacher, ["087"], ReverseLinkConfig())
    assert "You love owls." in base and "You love owls. You love 087." in primed
