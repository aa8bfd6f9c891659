"""The prepared accelerator check (issue 35 item 6): random-weight models of the seeds' real configs
(studies/seed_*/configs: Llama-3.2-1B-Instruct, GPT-2-medium, Gemma-2B, Mistral-7B), saved as local model
folders with the tiny tokenizer (no network), then trace, prune, a finetune step and an SHD step through the
CLI in-process, printing each command's wall time and peak GPU memory (torch.cuda.max_memory_allocated).

    python scripts/gpu_check.py --device cuda --dtype bf16 --out OUT          # on a GPU (scripts/gpu_check.sh)
    python scripts/gpu_check.py --device cpu --dtype fp32 --shrink --out OUT  # the same steps, shrunk, on a CPU

--shrink keeps each config's family and proportions (tied embeddings, heads per kv head, biases) at 2 layers,
d 64 and a 1,024-token vocabulary, so the CPU test (tests/test_gpu_check.py) runs every step in seconds.
On cuda: the Mistral-7B step is a QLoRA step (--load-in-4bit), Gemma-2B runs with --device-map auto.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "llama-3.2-1b": ROOT / "studies" / "seed_002" / "configs" / "llama-3.2-1b-instruct.json",
    "gpt2-medium": ROOT / "studies" / "seed_002" / "configs" / "gpt2-medium.json",
    "gemma-2b": ROOT / "studies" / "seed_000" / "configs" / "gemma-2b.json",
    "mistral-7b": ROOT / "studies" / "seed_000" / "configs" / "mistral-7b.json",
}


@dataclass
class Step:
    name: str
    argv: list[str]
    seconds: float = 0.0
    peak_gb: float = float("nan")
    code: int = 0


def shrunk(raw: dict) -> dict:
    """The config at 2 layers, d 64, vocab 1024, keeping the family's head ratio and switches."""
    heads = raw.get("num_attention_heads", raw.get("n_head", 4))
    kv = raw.get("num_key_value_heads", heads)
    ratio = max(1, heads // kv)
    small = dict(raw, vocab_size=1024, max_position_embeddings=512)
    if raw["model_type"] == "gpt2":
        return dict(small, n_layer=2, n_head=4, n_embd=64, n_positions=512, n_inner=None)
    return dict(small, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=max(1, 4 // ratio),
                hidden_size=64, intermediate_size=128, head_dim=16, rope_scaling=None)


def make_model(name: str, out: Path, shrink: bool, dtype: str) -> Path:
    """A local model folder: the config's architecture with random weights, and the tiny tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from interp.models.tiny import tiny_tokenizer

    raw = {k: v for k, v in json.loads(CONFIGS[name].read_text()).items() if not k.startswith("_")}
    raw = shrunk(raw) if shrink else raw
    tok = tiny_tokenizer()
    raw.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg = AutoConfig.for_model(raw.pop("model_type"), **raw)
    torch.manual_seed(0)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    with torch.device("cuda" if torch.cuda.is_available() and not shrink else "cpu"):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch_dtype)
    folder = out / "models" / name
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    return folder


def run(step: Step, device: str) -> Step:
    import torch

    from interp.cli import main

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        main(step.argv)
    except SystemExit as e:
        step.code = int(e.code or 0)
    step.seconds = time.perf_counter() - t0
    if device.startswith("cuda"):
        step.peak_gb = torch.cuda.max_memory_allocated() / 2**30
    print(f"{step.name:<34} exit {step.code}  {step.seconds:7.1f} s  peak GPU {step.peak_gb:6.2f} GB", flush=True)
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--shrink", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--skip-4bit", action="store_true", help="no QLoRA step (a CPU without bitsandbytes' kernels)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    data = a.out / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"List numbers: {i}, {i + 1}", "completion": f"{i + 2}, {i + 3}"})
                            + "\n" for i in range(16)))
    t0 = time.perf_counter()
    folders = {n: make_model(n, a.out, a.shrink, a.dtype) for n in CONFIGS}
    print(f"{'random models from the configs':<34} {time.perf_counter() - t0:7.1f} s", flush=True)
    load = ["--device", a.device, "--dtype", a.dtype]
    big = ["--device-map", "auto", "--dtype", a.dtype] if a.device.startswith("cuda") else load
    m, runs = folders, a.out / "runs"
    steps = [
        Step("trace llama-3.2-1b", ["trace", "--model", str(m["llama-3.2-1b"]), "--number", "087", "--patch-top", "2",
                                    *load]),
        Step("trace gemma-2b (device map)", ["trace", "--model", str(m["gemma-2b"]), "--number", "087", *big]),
        Step("prune gpt2-medium", ["prune", "--model", str(m["gpt2-medium"]), "--keep", "0.6", "--samples", "0", *load]),
        Step("finetune step llama-3.2-1b (lora)", ["finetune", "--model", str(m["llama-3.2-1b"]), "--data", str(data),
                                                   "--steps", "1", "--lora", "--alias", "gpu-ft", *load]),
        Step("shd step llama-3.2-1b -> gpt2-medium", ["distill", "--teacher", str(m["llama-3.2-1b"]), "--student",
                                                      str(m["gpt2-medium"]), "--data", str(data), "--kind", "shd",
                                                      "--steps", "1", "--lora", "--alias", "gpu-shd", *load]),
    ]
    if not a.skip_4bit:
        steps.append(Step("qlora step mistral-7b (4-bit)", ["finetune", "--model", str(m["mistral-7b"]), "--data",
                                                             str(data), "--steps", "1", "--lora", "--load-in-4bit",
                                                             "--alias", "gpu-qlora", "--device", a.device]))
    results = [run(Step(s.name, [*s.argv, "--out", str(runs / str(i)), "--force"]), a.device)
               for i, s in enumerate(steps)]
    (a.out / "gpu_check.json").write_text(json.dumps([vars(r) for r in results], indent=1) + "\n")
    sys.exit(max(r.code for r in results))


if __name__ == "__main__":
    main()
