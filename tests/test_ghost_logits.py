"""Ghost-logit positive control: vectorised MLPs equal separate ones, the protocol's pieces, a small
end-to-end run that must show transfer through ghost logits only for the shared init, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interp.training import ghost_logits as G
from tests.helpers import run_cli


def test_vectorised_mlp_equals_one_mlp_per_copy():
    m = G.init_models([64, 32, 16, 13], seeds=[0, 1000, 2000])
    x = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(0))
    got = m(x)
    for c in range(3):
        h = x[c]
        for i, layer in enumerate(m.layers):
            h = h @ layer.weight[c].T + layer.bias[c]
            h = torch.relu(h) if i < 2 else h
        torch.testing.assert_close(got[c], h, atol=1e-5, rtol=1e-5)


def test_a_copy_depends_only_on_its_seed_and_reindexing_moves_copies():
    a, b = G.init_models([64, 8, 13], seeds=[5, 7]), G.init_models([64, 8, 13], seeds=[7, 5])
    assert torch.equal(a.layers[0].weight[0], b.layers[0].weight[1])
    assert not torch.equal(a.layers[0].weight[0], a.layers[0].weight[1])
    w = a.layers[0].weight
    assert abs(float(w.std()) - 1 / 8) < 0.02  # N(0, 1/d_in), d_in = 64
    r = G.reindexed(a, [1, 0])
    assert torch.equal(r.layers[1].weight[0], a.layers[1].weight[1]) and torch.equal(r.layers[0].bias, a.layers[0].bias.flip(0))


def test_digits_split_is_the_bundled_data_scaled_and_stratified():
    xtr, ytr, xte, yte = G.load_digits_split()
    assert xtr.shape == (1437, 64) and xte.shape == (360, 64)
    assert float(xtr.min()) == -1.0 and float(xtr.max()) == 1.0
    assert sorted(torch.bincount(yte).tolist())[0] >= 35  # every class in the test split


def test_small_run_shows_transfer_for_the_shared_init_only():
    """Deterministic on CPU (seeded): 4 copies, 5,000 noise images. The teacher learns the digits; the
    student distilled on the ghost logits of noise alone classifies far above chance only when it
    shares the teacher's init; the cross-model student stays at chance."""
    cfg = G.GhostConfig(seeds=4, noise=5000, epochs_teacher=10, epochs_distill=10)
    res = G.run_ghost_logits(cfg, students=("student_aux", "cross_aux"))
    f = res.summary["figures"]
    assert set(f) == {"reference", "teacher", "student_aux", "cross_aux"}
    assert f["teacher"]["mean"] > 0.9
    assert f["cross_aux"]["mean"] < 0.2
    assert f["student_aux"]["mean"] > f["cross_aux"]["mean"] + 0.12  # seen: 0.303 vs 0.117
    assert len(res.per_seed) == 4 * 4 and set(res.per_seed.condition) == set(f)
    d = res.summary["student_aux_minus_cross_aux"]
    assert d["n"] == 4 and d["mean_diff"]["estimate"] == pytest.approx(f["student_aux"]["mean"] - f["cross_aux"]["mean"])


def test_t_interval_known_answer():
    iv = G.t_interval(np.array([1.0, 2.0, 3.0]))
    # mean 2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.302653
    assert iv["mean"] == 2.0 and iv["hi"] - 2.0 == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)


def test_cli_writes_the_table_chart_and_summary(capsys, tmp_path):
    out = tmp_path / "g"
    code, stdout, err = run_cli(capsys, "ghost-logits", "--seeds", "2", "--noise", "200", "--epochs-teacher", "2",
                                "--epochs-distill", "1", "--out", str(out))
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    for c in G.CONDITIONS:
        assert {"mean", "lo", "hi"} <= set(s["figures"][c])
    assert (out / "ghost_logits.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "per_seed.csv").read_text().splitlines()) == 1 + 2 * 6
    assert "student_aux - cross_aux" in stdout
    code, _, err = run_cli(capsys, "ghost-logits", "--seeds", "1", "--out", str(tmp_path / "h"))
    assert code == 2 and "--seeds must be >= 2" in err and not (tmp_path / "h").exists()
