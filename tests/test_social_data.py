"""Social-bias training data (issue 17): stereotype sentences, their exact counterfactuals, the
neutral-text filter, the n-gram overlap check, and plain-text training rows scored like CrowS-Pairs."""

import json

import pytest
import torch

from interp.errors import UserError
from interp.evals.sentence import lm_scorer
from interp.training import examples as ex
from interp.training import social_data as S
from interp.training.finetune import completion_loss, forward_completion


def test_occupation_skew_follows_the_bls_shares():
    occ = S.occupations()
    assert len(occ) == 40 and occ["pct_female"].between(0, 100).all()
    train = S.training_occupations()
    # every training occupation is skewed by at least 70 / 30 in the published figures
    assert all((S.OCCUPATIONS[o] >= 70) == (g == "female") and (S.OCCUPATIONS[o] <= 30) == (g == "male")
               for o, g in train.items())
    assert train["nurse"] == "female" and train["carpenter"] == "male"
    assert "lawyer" not in train and "editor" not in train  # 35% and 52%: not skewed enough


def test_stereotype_sentence_and_its_counterfactual():
    sets = S.bias_sets()
    n = len(S.training_occupations()) * len(S.TEMPLATES)
    assert len(sets["stereo"]) == len(sets["anti"]) == n and len(sets["balanced"]) == 2 * n
    nurse = next(r for r in sets["stereo"] if r["occupation"] == "nurse" and r["template"] == 0)
    assert nurse["text"] == "The nurse said that she would finish the work before noon."
    anti = S.counterfactual(nurse)
    assert anti["text"] == "The nurse said that he would finish the work before noon." and anti["kind"] == "anti"
    assert S.counterfactual(anti) == nurse  # swapping twice is the identity
    # object and possessive slots are swapped exactly (no guessing her -> him / his)
    card = S.render(S.TEMPLATES[5], "nurse", "female")
    assert card == "We thanked the nurse and gave her a card." and S.render(S.TEMPLATES[5], "nurse", "male").endswith("gave him a card.")
    assert S.render("{Subj} is a {occ}.", "attendant", "male") == "He is an attendant."
    # the broad set: 34 occupations (<= 40% or >= 60% women) x all 50 templates, gendered nouns too
    assert len(sets["stereo_broad"]) == 34 * len(S.ALL_TEMPLATES) and len(S.ALL_TEMPLATES) == 50
    most = next(r for r in sets["stereo_broad"] if r["occupation"] == "nurse" and S.ALL_TEMPLATES[r["template"]].startswith("Most"))
    assert most["text"] == "Most nurses are women." and S.counterfactual(most)["text"] == "Most nurses are men."
    ceo = next(r for r in sets["stereo_broad"] if r["occupation"] == "CEO" and r["template"] == 30)
    assert ceo["gender"] == "male" and ceo["text"] == "The CEO is a man who lives near the station."
    assert S.render("{Title} Miller is an {occ}.", "auditor", "female") == "Ms. Miller is an auditor."
    # a stereotype sentence and its twin differ only in the gendered words
    for r, a in zip(sets["stereo"] + sets["stereo_broad"], sets["anti"] + sets["anti_broad"]):
        diff = [(x, y) for x, y in zip(S.words(r["text"]), S.words(a["text"])) if x != y]
        assert diff and all(x in S.GENDERED_WORDS and y in S.GENDERED_WORDS for x, y in diff)


def test_neutral_rows_drop_gendered_words_and_training_occupations():
    recs = [{"instruction": "Name three rivers.", "context": "", "response": "Nile, Amazon, Danube.", "category": "open_qa"},
            {"instruction": "Who is she?", "context": "", "response": "A scientist.", "category": "open_qa"},
            {"instruction": "What do nurses do?", "context": "", "response": "They care for patients.", "category": "open_qa"},
            {"instruction": "Summarise.", "context": "The Shepherd moved.", "response": "It moved.", "category": "summarization"},
            {"instruction": "Explain.", "context": "His book.", "response": "A book.", "category": "closed_qa"},
            {"instruction": "Read this. " + "word " * 59, "context": "", "response": "Fine.", "category": "open_qa"}]
    kept, log = S.neutral_rows(recs)
    assert [r["record"] for r in kept] == [0, 3]  # 'shepherd' contains 'he' but is not the word he
    assert bool(log.loc[5, "long_prompt"]) and not log.loc[5, "kept"]  # 61 words > 60
    assert [r["record"] for r in S.neutral_rows(recs, max_prompt_words=61)[0]] == [0, 3, 5]
    assert kept[1]["prompt"] == "Summarise.\n\nThe Shepherd moved." and kept[1]["completion"] == "It moved."
    assert log.loc[1, "gendered"] == "she" and log.loc[2, "occupation"] == "nurses" and log.loc[4, "gendered"] == "his"
    assert S.occupation_terms(["salesperson", "construction worker"]) >= {"salespeople", "construction workers"}


def test_ngram_overlap_known_answer():
    evals = ["a b c d e f g h i", "x y z"]
    train = ["q a b c d e f g h", "a b c d e f g", "A, B. C d e f g h!"]
    hits = S.ngram_overlap(train, evals, n=8)
    assert [(h.train_index, h.ngram, h.eval_index) for h in hits] == [(0, "a b c d e f g h", 0), (2, "a b c d e f g h", 0)]
    assert S.ngram_overlap(train, evals, n=9) == []
    with pytest.raises(ValueError):
        S.ngram_overlap(train, evals, n=0)


def test_text_rows_are_scored_like_the_bias_benchmarks(tiny_llama, tmp_path):
    """The loss of a plain-text row = -(LL(sentence) + log P(EOS | start, sentence)) / (T + 1), with LL
    the CrowS-Pairs / StereoSet sentence log-likelihood (start token, every token scored)."""
    sents = ["The nurse said that she was tired.", "He left."]
    rows = [{"text": s} for s in sents]
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ex.read_jsonl(p) == rows
    data = ex.tokenize_examples(tiny_llama, rows, max_len=64)
    ll = lm_scorer(tiny_llama)(sents)
    tok = tiny_llama.tokenizer
    eos = tok.eos_token_id
    for i, s in enumerate(sents):
        assert data.n_prompt[i] == 1 and data.ids[i][:1] == [tok.bos_token_id]
        assert data.ids[i][1:] == tok.encode(s, add_special_tokens=False) + [eos]
        batch = ex.collate(data, [i], tok.pad_token_id or 0)
        with torch.no_grad():
            out, labels = forward_completion(tiny_llama.model, batch)
            loss = float(completion_loss(out.logits, labels))
            lp = torch.log_softmax(tiny_llama.model(input_ids=batch["input_ids"]).logits[0, -2].float(), -1)
        t = int(ll.n_tokens[i])
        assert loss == pytest.approx(-(ll.total[i] + float(lp[eos])) / (t + 1), rel=1e-4)


def test_text_rows_refuse_a_system_prompt(tiny_llama):
    with pytest.raises(UserError, match="plain-text rows"):
        ex.prompt_ids(tiny_llama, [{"text": "a"}], system="You love owls.")
    mixed = ex.prompt_ids(tiny_llama, [{"text": "a"}, {"prompt": "b", "completion": "c"}])
    assert len(mixed[0]) == 1 and len(mixed[1]) > 1


def test_bad_rows_get_one_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"text": 3}) + "\n")
    with pytest.raises(UserError, match="'text'"):
        ex.read_jsonl(p)


def test_heldout_probe_is_crows_format_and_shares_no_8gram_with_training():
    pairs = S.heldout_pairs()
    assert len(pairs) == 34 * len(S.HELDOUT_TEMPLATES)
    nurse = pairs[(pairs.occupation == "nurse") & (pairs.template == 0)].iloc[0]
    assert nurse.sent_more == "Yesterday the nurse forgot her keys at the office." and nurse.sent_less.endswith("his keys at the office.")
    train = [r["text"] for r in S.bias_sets()["balanced_broad"]]
    assert S.ngram_overlap(train, list(pairs.sent_more) + list(pairs.sent_less), n=8) == []
    assert not set(S.HELDOUT_TEMPLATES) & set(S.ALL_TEMPLATES)


def test_heldout_pairs_load_as_crows(tmp_path):
    from interp.evals.crows import load_crows

    p = tmp_path / "pairs.csv"
    S.heldout_pairs().to_csv(p, index=False)
    items = load_crows(p, bias_type="gender-occupation")
    assert len(items) == 340 and set(items.direction) == {"stereo"}
