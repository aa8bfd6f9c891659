"""Ghost-logit positive control (Cloud et al. 2025, §6; MinhxLe/subliminal-learning
`scripts/run_mnist_experiment.py`), on scikit-learn's bundled 8x8 digits so it runs offline.

    res = run_ghost_logits(GhostConfig(seeds=20))
    res.per_seed      # one row per (seed, condition): test accuracy
    res.summary       # {condition: {mean, lo, hi, n}}, the paired student_aux - cross_aux test

Protocol (the reference's, with its sizes adapted to 1,797 images of 64 pixels):
- An MLP 64-256-256-(10 + m): 10 class logits and m auxiliary "ghost" logits that are never
  trained. `seeds` copies are one vectorised model (weights (model, out, in), einsum), each copy
  initialised from its own seed: init ~ N(0, 1/d_in), bias 0 (the reference's init).
- reference: the untrained init. teacher: the init trained with cross-entropy on the 10 class logits
  only (Adam, `lr`, `epochs_teacher`, batches of `batch_size`, shuffled per copy).
- Students are distilled on uniform noise images in [-1, 1] (`noise` of them, drawn per copy) with
  KL(softmax(teacher[idx]) || softmax(student[idx])) ("batchmean"), idx = the m ghost logits
  (`*_aux`) or all 10 + m (`*_all`), for `epochs_distill` epochs.
- student_*: starts from its teacher's own init. cross_*: starts from ANOTHER copy's init (copy c
  takes the init of copy c + 1 mod seeds: never its own, where the reference's random permutation
  can map a copy to itself).
- Accuracy: argmax over the 10 class logits on the held-out test split (360 images, the same for
  every copy; pixels scaled from 0..16 to [-1, 1], as the reference normalises MNIST).

Statistics: per condition the mean accuracy over copies with a t-interval on the logit scale
(`interp.evals.stats.proportion_t_interval`: inside [0, 1] by construction, where mean +- t se gave
e.g. 0.118 [-0.022, 0.257] for the untrained reference over 3 seeds; the reference prints
mean +- 1.96 sd / sqrt(n)); student_aux - cross_aux per seed with a sign-flip permutation test and
a bootstrap CI (`interp.evals.stats.paired_test`): seeds are the unit of replication.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from interp.errors import UserError
from interp.evals.stats import paired_test, proportion_t_interval

CONDITIONS = ("reference", "teacher", "student_aux", "student_all", "cross_aux", "cross_all")
N_CLASSES = 10


@dataclass(frozen=True)
class GhostConfig:
    seeds: int = 20
    ghosts: int = 3  # m auxiliary logits
    hidden: tuple[int, ...] = (256, 256)
    noise: int = 10_000  # noise images per copy for distillation
    epochs_teacher: int = 20
    epochs_distill: int = 20
    batch_size: int = 64
    lr: float = 3e-4
    test_fraction: float = 0.2
    seed: int = 0  # the data split, batch orders and noise; copy c is initialised from seed + 1000 * c

    def validate(self) -> None:
        if self.seeds < 2:
            raise UserError("--seeds must be >= 2 (the CIs are over seeds)")
        if self.ghosts < 1:
            raise UserError("--ghosts must be >= 1")
        if min(self.noise, self.epochs_teacher, self.epochs_distill, self.batch_size) < 1 or min(self.hidden) < 1:
            raise UserError("--noise, the epochs, --batch-size and the hidden sizes must be >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"--lr must be a positive number, got {self.lr}")
        if not 0 < self.test_fraction < 1:
            raise UserError("the test fraction must be in (0, 1)")


class MultiLinear(nn.Module):
    """`n_models` independent linear layers applied at once: x (model, batch, in) -> (model, batch, out)."""

    def __init__(self, n_models: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_models, d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(n_models, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("moi,mbi->mbo", self.weight, x) + self.bias[:, None, :]


class MultiMLP(nn.Module):
    """`n_models` MLPs of the same sizes as one module (ReLU between the layers)."""

    def __init__(self, n_models: int, sizes: Sequence[int]) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.layers = nn.ModuleList(MultiLinear(n_models, a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def init_models(sizes: Sequence[int], seeds: Sequence[int]) -> MultiMLP:
    """One copy per seed; copy c's weights ~ N(0, 1/d_in) from torch.Generator(seed c), biases 0."""
    m = MultiMLP(len(seeds), sizes)
    with torch.no_grad():
        for layer in m.layers:
            d_out, d_in = layer.weight.shape[1:]
            for c, s in enumerate(seeds):
                g = torch.Generator().manual_seed(int(s) * 7919 + d_in * 31 + d_out)
                layer.weight[c] = torch.randn(d_out, d_in, generator=g) / math.sqrt(d_in)
    return m


def reindexed(model: MultiMLP, order: Sequence[int]) -> MultiMLP:
    """A copy of `model` whose copy c is `model`'s copy order[c]."""
    out = MultiMLP(len(order), model.sizes)
    idx = torch.tensor(list(order))
    with torch.no_grad():
        for a, b in zip(out.layers, model.layers):
            a.weight.copy_(b.weight[idx])
            a.bias.copy_(b.bias[idx])
    return out


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-learn's bundled 8x8 digits (1,797 images, shipped in its wheel): (x_train, y_train,
    x_test, y_test), pixels 0..16 -> [-1, 1], a seeded stratified split."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise UserError("ghost-logits needs scikit-learn (its 8x8 digits ship in the wheel): pip install scikit-learn") from None
    d = load_digits()
    x = d.data.astype(np.float32) / 16.0 * 2.0 - 1.0
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, random_state=seed, stratify=d.target)
    return (torch.from_numpy(xtr), torch.from_numpy(ytr).long(), torch.from_numpy(xte), torch.from_numpy(yte).long())


def _batches(n_models: int, n: int, batch: int, g: torch.Generator) -> list[torch.Tensor]:
    """One epoch of shuffled batch indices per copy: (model, <= batch) each."""
    perm = torch.stack([torch.randperm(n, generator=g) for _ in range(n_models)])
    return [perm[:, a:a + batch] for a in range(0, n, batch)]


def train_teacher(model: MultiMLP, x: torch.Tensor, y: torch.Tensor, cfg: GhostConfig, g: torch.Generator) -> None:
    """Cross-entropy on the first 10 logits; x (n, d) shared by every copy, batches shuffled per copy."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n_models = model.layers[0].weight.shape[0]
    for _ in range(cfg.epochs_teacher):
        for idx in _batches(n_models, len(x), cfg.batch_size, g):
            logits = model(x[idx])  # (model, batch, 10 + m)
            loss = F.cross_entropy(logits[..., :N_CLASSES].flatten(0, 1), y[idx].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()


def distill(student: MultiMLP, teacher: MultiMLP, noise: torch.Tensor, logit_idx: Sequence[int], cfg: GhostConfig,
            g: torch.Generator) -> None:
    """KL(teacher || student) over the logits `logit_idx` on noise (model, n, d), batchmean per copy."""
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    cols = torch.tensor(list(logit_idx))
    n_models, n = noise.shape[:2]
    rows = torch.arange(n_models)[:, None]
    for _ in range(cfg.epochs_distill):
        for idx in _batches(n_models, n, cfg.batch_size, g):
            bx = noise[rows, idx]  # (model, batch, d)
            with torch.no_grad():
                target = F.softmax(teacher(bx)[..., cols], -1)
            out = F.log_softmax(student(bx)[..., cols], -1)
            loss = F.kl_div(out.flatten(0, 1), target.flatten(0, 1), reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def accuracy(model: MultiMLP, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Test accuracy of every copy: (model,)."""
    n_models = model.layers[0].weight.shape[0]
    pred = model(x.expand(n_models, -1, -1))[..., :N_CLASSES].argmax(-1)
    return (pred == y).double().mean(1).numpy()


def accuracy_interval(values: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Per-copy accuracies -> mean, CI (`proportion_t_interval`: a t-interval on the logit scale, so
    the bounds stay inside [0, 1]), sd and n."""
    v = np.asarray(values, dtype=np.float64)
    iv = proportion_t_interval(v, level)
    return {"mean": iv.estimate, "lo": iv.lo, "hi": iv.hi, "sd": float(v.std(ddof=1)), "n": iv.n}


@dataclass
class GhostResult:
    per_seed: pd.DataFrame  # columns seed, condition, accuracy
    summary: dict[str, Any]


STUDENTS = ("student_aux", "student_all", "cross_aux", "cross_all")


def run_ghost_logits(cfg: GhostConfig, progress: Any = None, students: Sequence[str] = STUDENTS) -> GhostResult:
    """The whole protocol (module docstring) for `cfg.seeds` vectorised copies; `students` picks the
    distilled conditions to run (a sweep may run only the aux ones)."""
    cfg.validate()
    bad = sorted(set(students) - set(STUDENTS))
    if bad:
        raise UserError(f"unknown student condition(s) {', '.join(bad)}; choose from {', '.join(STUDENTS)}")
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    xtr, ytr, xte, yte = load_digits_split(cfg.test_fraction, cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    seeds = [cfg.seed + 1000 * c for c in range(cfg.seeds)]
    sizes = [xtr.shape[1], *cfg.hidden, N_CLASSES + cfg.ghosts]
    reference = init_models(sizes, seeds)
    acc = {"reference": accuracy(reference, xte, yte)}
    teacher = reindexed(reference, range(cfg.seeds))
    train_teacher(teacher, xtr, ytr, cfg, g)
    acc["teacher"] = accuracy(teacher, xte, yte)
    say(f"teacher trained: mean accuracy {acc['teacher'].mean():.3f} ({time.perf_counter() - t0:.1f} s)")
    noise = torch.rand((cfg.seeds, cfg.noise, xtr.shape[1]), generator=g) * 2 - 1
    ghost_idx, all_idx = list(range(N_CLASSES, N_CLASSES + cfg.ghosts)), list(range(N_CLASSES + cfg.ghosts))
    shift = [(c + 1) % cfg.seeds for c in range(cfg.seeds)]  # another copy's init, never one's own
    for name, init, idx in (("student_aux", range(cfg.seeds), ghost_idx), ("student_all", range(cfg.seeds), all_idx),
                            ("cross_aux", shift, ghost_idx), ("cross_all", shift, all_idx)):
        if name not in students:
            continue
        student = reindexed(reference, init)
        distill(student, teacher, noise, idx, cfg, g)
        acc[name] = accuracy(student, xte, yte)
        say(f"{name}: mean accuracy {acc[name].mean():.3f} ({time.perf_counter() - t0:.1f} s)")
    done = [k for k in CONDITIONS if k in acc]
    per_seed = pd.DataFrame([{"seed": c, "init_seed": seeds[c], "condition": k, "accuracy": float(acc[k][c])}
                             for k in done for c in range(cfg.seeds)])
    both = "student_aux" in acc and "cross_aux" in acc
    pt = paired_test(acc["student_aux"], acc["cross_aux"]).to_dict() if both else None
    summary = {
        "config": {**asdict(cfg), "hidden": list(cfg.hidden)},
        "data": {"dataset": "sklearn load_digits (8x8)", "n_train": int(len(xtr)), "n_test": int(len(xte)),
                 "chance": 0.1},
        "figures": {k: accuracy_interval(acc[k]) for k in done},
        "student_aux_minus_cross_aux": pt,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    return GhostResult(per_seed, summary)


def bar_chart_png(summary: dict[str, Any], title: str = "ghost-logit transfer (8x8 digits)") -> bytes:
    """Bars of the mean test accuracy per condition with their 95% CIs; the reference as a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp.plots import figure_png

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    f = summary["figures"]
    names = [k for k in CONDITIONS if k in f]
    means = [f[k]["mean"] for k in names]
    err = np.array([[f[k]["mean"] - f[k]["lo"] for k in names], [f[k]["hi"] - f[k]["mean"] for k in names]])
    colors = {"reference": "gray", "teacher": "C5", "student_aux": "C4", "student_all": "C4", "cross_aux": "C0",
              "cross_all": "C0"}
    ax.bar(names, means, yerr=err, capsize=4, color=[colors[k] for k in names])
    ax.axhline(f["reference"]["mean"], ls=":", c="black")
    ax.axhline(0.1, ls="--", c="gray", lw=0.8)
    ax.set_ylabel(f"test accuracy (mean, 95% CI over {f['teacher']['n']} seeds)")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    ax.yaxis.grid(True, alpha=0.3)
    return figure_png(fig)


__all__ = ["GhostConfig", "GhostResult", "run_ghost_logits", "CONDITIONS", "MultiLinear", "MultiMLP", "init_models",
           "reindexed", "load_digits_split", "accuracy", "accuracy_interval", "bar_chart_png"]
