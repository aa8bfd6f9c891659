"""Random tiny models of each family, built from configs with no download (for tests and demos).

`tiny_model("llama")` returns (model, tokenizer) with 2 layers, 4 heads and a 560-token byte-level
BPE tokenizer (ChatML template, digits split one per token) shipped in `data/tiny_tokenizer.json`.
Weights are seeded, so the same call gives the same model.
"""

from __future__ import annotations

from importlib.resources import files

import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# llama: Llama-3.2's shape (tied embeddings, 2 query heads per kv head); gpt2: GPT-2(-medium)'s; mistral
# (untied, GQA), qwen2 (q/k/v biases, tied), gemma (v1: MQA, GeGLU, embeddings x sqrt(d)) and gemma2 (logit
# soft-capping, sliding / full layers): every architecture the seeds name, at 2 layers
TINY_FAMILIES = ("llama", "gemma3", "gpt2", "mistral", "qwen2", "gemma", "gemma2")


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    path = files("interp.models").joinpath("data/tiny_tokenizer.json")
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(path),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token=None,
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_model(family: str = "llama", seed: int = 0, tokenizer: PreTrainedTokenizerFast | None = None,
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A seeded random model of `family` (one of TINY_FAMILIES) and its tokenizer: the tiny tokenizer, or
    `tokenizer` (the vocabulary size follows it)."""
    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    vocab = len(tok)
    cfg: PretrainedConfig
    cls: type[PreTrainedModel]
    if family == "llama":
        cfg = LlamaConfig(
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=64,
            intermediate_size=128, vocab_size=vocab, max_position_embeddings=512,
            tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        cls = LlamaForCausalLM
    elif family == "gemma3":
        cfg = Gemma3TextConfig(
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
            hidden_size=64, intermediate_size=128, vocab_size=vocab, max_position_embeddings=512,
            sliding_window=8, query_pre_attn_scalar=16, layer_types=["sliding_attention", "full_attention"],
            tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        cls = Gemma3ForCausalLM
    elif family == "gpt2":
        cfg = GPT2Config(
            n_layer=2, n_head=4, n_embd=64, n_positions=512, vocab_size=vocab,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        cls = GPT2LMHeadModel
    elif family in ("mistral", "qwen2"):
        common = dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=64,
                      intermediate_size=128, vocab_size=vocab, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        if family == "mistral":
            cfg, cls = MistralConfig(**common, tie_word_embeddings=False, sliding_window=None), MistralForCausalLM
        else:
            cfg, cls = Qwen2Config(**common, tie_word_embeddings=True), Qwen2ForCausalLM
    elif family == "gemma":
        cfg = GemmaConfig(
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16, hidden_size=64,
            intermediate_size=128, vocab_size=vocab, max_position_embeddings=512,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        cfg.hidden_activation = "gelu_pytorch_tanh"  # Gemma's GeGLU (set after: the typed signature omits it)
        cls = GemmaForCausalLM
    elif family == "gemma2":
        cfg = Gemma2Config(
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_size=64,
            intermediate_size=128, vocab_size=vocab, max_position_embeddings=512, sliding_window=8,
            query_pre_attn_scalar=16, layer_types=["sliding_attention", "full_attention"],
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        cls = Gemma2ForCausalLM
    else:
        raise ValueError(f"unknown tiny family {family!r}; choose from {TINY_FAMILIES}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = cls(cfg)  # type: ignore[arg-type]  # each branch pairs a config with its own class
        # Larger weights than the default init give peaked, family-specific next-token
        # distributions, so known-answer tests are not comparing near-uniform vectors.
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() >= 2:
                    p.normal_(0.0, 0.2)
    return model.eval(), tok
