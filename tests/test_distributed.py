"""Data parallelism through accelerate: a 2-process run (CPU, gloo) equals a 1-process run.

`accelerate launch --multi_gpu --num_processes 2 -m interp finetune --device cpu ...` with global
batch 4 (2 per rank). In accelerate 1.15 `--cpu` selects the single-process launcher (or mpirun with
a hostfile), so `--cpu --num_processes 2` starts ONE process; `--multi_gpu` selects the torchrun
launcher, and interp's `Accelerator(cpu=True)` then runs DistributedType.MULTI_CPU over gloo. The run
must give the weights of `python -m interp finetune ...` with batch 4 and the same seed, within
TOL (float32 summation order differs: the gradient is all-reduced over ranks). Only rank 0 writes
the checkpoint, the run folder and the store entry.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from interp.training.distributed import Distributed

TOL = 1e-5  # max |w_2proc - w_1proc| after 4 AdamW steps at lr 1e-3; measured 1.27e-06


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _finetune(cmd_prefix: list[str], home, out, data, every: int = 4, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTERP_HOME": str(home), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = ["finetune", "--model", "tiny-llama", "--data", str(data), "--full", "--steps", "4", "--batch-size", "4",
            "--lr", "1e-3", "--seed", "3", "--alias", "tiny-dp", "--checkpoint-every", str(every), "--out", str(out),
            *extra]
    return subprocess.run(cmd_prefix + args, env=env, capture_output=True, text=True, timeout=600)


# the launcher of the interpreter running the tests (a venv that is not activated has it there, not on PATH)
_BESIDE = os.path.join(os.path.dirname(sys.executable), "accelerate")
ACCELERATE = _BESIDE if os.access(_BESIDE, os.X_OK) else shutil.which("accelerate")


def _launch() -> list[str]:
    return [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", "interp"]


def _data(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"List {i}, {i + 3}.", "completion": f"{i + 7}, {2 * i}, {i * i}"}) + "\n"
                            for i in range(10)))
    return data


def _weights(home):
    from safetensors.torch import load_file

    return load_file(str(next(home.rglob("tiny-dp/model.safetensors"))))


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate's launcher is neither beside this Python nor on PATH")
def test_two_process_ddp_equals_one_process(tmp_path):
    data = _data(tmp_path)
    one = _finetune([sys.executable, "-m", "interp"], tmp_path / "h1", tmp_path / "o1", data)
    assert one.returncode == 0, one.stderr[-2000:]
    two = _finetune(_launch(), tmp_path / "h2", tmp_path / "o2", data)
    assert two.returncode == 0, two.stderr[-3000:]
    w1, w2 = _weights(tmp_path / "h1"), _weights(tmp_path / "h2")
    assert set(w1) == set(w2)
    diff = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    from interp.models import load_model

    init = load_model("tiny-llama").model.state_dict()
    moved = max(float((w1[k] - init[k]).abs().max()) for k in w1 if k in init)
    assert moved > 1e-3  # training changed the weights, so equality is not trivial
    assert diff < TOL, f"max weight difference 2 vs 1 process: {diff:.3g}"
    # one checkpoint, written once; summaries agree on the loss history to float tolerance
    for o in ("o1", "o2"):
        assert [p.name for p in (tmp_path / o / "checkpoints").iterdir()] == ["step-000004"]
    s1 = json.loads((tmp_path / "o1" / "summary.json").read_text())["figures"]
    s2 = json.loads((tmp_path / "o2" / "summary.json").read_text())["figures"]
    assert s2["world_size"] == 2 and s1["world_size"] == 1
    assert s1["first_loss"] == pytest.approx(s2["first_loss"], rel=1e-5)
    assert s1["last_loss"] == pytest.approx(s2["last_loss"], rel=1e-4)


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate's launcher is neither beside this Python nor on PATH")
def test_two_process_resume_equals_uninterrupted(tmp_path):
    """2 ranks, checkpoints at steps 2 and 4; drop step 4 and resume from 2: the same weights."""
    data = _data(tmp_path)
    full = _finetune(_launch(), tmp_path / "h", tmp_path / "o", data, every=2)
    assert full.returncode == 0, full.stderr[-3000:]
    w_full = _weights(tmp_path / "h")
    shutil.rmtree(tmp_path / "o" / "checkpoints" / "step-000004")
    again = _finetune(_launch(), tmp_path / "h", tmp_path / "o", data, every=2, extra=("--resume",))
    assert again.returncode == 0, again.stderr[-3000:]
    s = json.loads((tmp_path / "o" / "summary.json").read_text())["figures"]
    assert s["resumed_from"] == 2 and s["world_size"] == 2
    w = _weights(tmp_path / "h")
    assert max(float((w[k] - w_full[k]).abs().max()) for k in w) == 0.0  # same ranks, same order: bit-exact


def test_single_process_helpers_are_identity():
    d = Distributed.create("cpu")
    assert (d.world, d.rank, d.is_main) == (1, 0, True)
    assert d.shard([5, 1, 4, 2]) == [5, 1, 4, 2]
    assert d.sums([3.5, 2]) == [3.5, 2.0] and d.weight(7, 7) == 1.0


def test_weighting_makes_rank_means_exact():
    """m_r n_r W / N averaged over ranks = the global mean, for uneven token counts."""
    tokens = [torch.arange(5.0), torch.arange(5.0, 8.0)]  # rank 0: 5 units, rank 1: 3 units
    n_all = sum(len(t) for t in tokens)
    world = len(tokens)
    per_rank = [t.mean() * (len(t) * world / n_all) for t in tokens]
    assert float(sum(per_rank) / world) == pytest.approx(float(torch.cat(tokens).mean()))
