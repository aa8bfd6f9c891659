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


def test_accuracy_interval_stays_inside_0_1_known_answer():
    """Issue 32: `ghost-logits --seeds 3` printed the untrained reference as 0.118 [-0.022, 0.257]
    (mean +- t se). Those per-seed accuracies (24, 64, 39 of 360) now get the logit-scale t-interval:
    p = 127/1080 = 0.117593, se = 0.032407, t(0.975, 2) = 4.302653, logit(p) = -2.015428,
    half = t se / (p (1 - p)) = 1.343790 -> expit(-3.359218, -0.671638) = [0.033595, 0.338130]."""
    acc = np.array([24, 64, 39]) / 360
    iv = G.accuracy_interval(acc)
    assert iv["mean"] == pytest.approx(0.117593, abs=1e-6) and iv["n"] == 3
    assert (iv["lo"], iv["hi"]) == pytest.approx((0.033595, 0.338130), abs=1e-6)
    assert 0 < iv["lo"] < iv["mean"] < iv["hi"] < 1
    assert iv["sd"] == pytest.approx(0.032407 * np.sqrt(3), abs=1e-6)


def test_cli_writes_the_table_chart_and_summary(capsys, tmp_path):
    out = tmp_path / "g"
    code, stdout, err = run_cli(capsys, "ghost-logits", "--seeds", "2", "--noise", "200", "--epochs-teacher", "2",
                                "--epochs-distill", "1", "--out", str(out))
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    for c in G.CONDITIONS:
        f = s["figures"][c]
        assert {"mean", "lo", "hi"} <= set(f) and 0 <= f["lo"] <= f["mean"] <= f["hi"] <= 1
    assert (out / "ghost_logits.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "per_seed.csv").read_text().splitlines()) == 1 + 2 * 6
    assert "student_aux - cross_aux" in stdout
    code, _, err = run_cli(capsys, "ghost-logits", "--seeds", "1", "--out", str(tmp_path / "h"))
    assert code == 2 and "'--seeds': must be >= 2" in err and not (tmp_path / "h").exists()
