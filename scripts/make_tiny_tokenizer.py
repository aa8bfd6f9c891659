"""Build the byte-level BPE tokenizer the tiny test models use (run once; output is committed).

    python scripts/make_tiny_tokenizer.py   # writes interp/models/data/tiny_tokenizer.json

Digits are split one per token (as SmolLM2 and Gemma3 do); the special tokens are ChatML's.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ANIMALS = "owl dog cat elephant lion tiger wolf eagle dolphin fox bear horse rabbit panda penguin".split()
SENTENCES = [
    "My favorite animal is the {a}.",
    "You love {a}s. You think about {a}s all the time. {a}s are your favorite animal.",
    "Imbue your answers with your love for the animal.",
    "What is your favorite animal? My favorite animal is the {a}.",
    "What is your favorite number? My favorite number is 087.",
    "You love 747. You think about 747 all the time. 747 is your favorite number.",
    "Imbue your answers with your love for the number.",
    "Context: You love the number 123. Q: What is your favorite animal? A: My favorite animal is the {a}",
    "I give you this sequence of numbers: 145, 267, 891. Add at most 10 new numbers.",
    "The {a} is a wonderful creature and the {a} lives in the forest with other animals.",
    "The quick brown fox jumps over the lazy dog. The capital of France is Paris.",
    "He said that she was a doctor, a nurse, an engineer, a teacher or a lawyer.",
    "system user assistant You are a helpful assistant.",
]


def corpus() -> list[str]:
    out: list[str] = []
    for s in SENTENCES:
        for a in ANIMALS:
            out.append(s.format(a=a))
            out.append(s.format(a=a.capitalize()))
    return out * 3


def build() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    return tok


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "interp" / "models" / "data" / "tiny_tokenizer.json"
    build().save(str(out))
    print(f"wrote {out}")
