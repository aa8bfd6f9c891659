import numpy as np
import pytest

from interp.evals.stats import bootstrap_ci, paired_test, permutation_test, wilson_interval


def test_bootstrap_constant_has_zero_width_and_covers_mean():
    iv = bootstrap_ci([2.0] * 10)
    assert iv.estimate == iv.lo == iv.hi == 2.0
    x = np.random.default_rng(0).normal(5.0, 1.0, 400)
    iv = bootstrap_ci(x, n_boot=4000)
    assert iv.lo < x.mean() < iv.hi
    half = (iv.hi - iv.lo) / 2
    assert abs(half - 1.96 * x.std(ddof=1) / np.sqrt(x.size)) < 0.02  # normal-theory half width


def test_wilson_known_values():
    iv = wilson_interval(5, 10)  # textbook: [0.2366, 0.7634]
    assert iv.estimate == 0.5
    assert abs(iv.lo - 0.2366) < 1e-4 and abs(iv.hi - 0.7634) < 1e-4
    iv0 = wilson_interval(0, 20)
    assert iv0.lo == 0.0 and abs(iv0.hi - 0.1611) < 1e-4


def test_permutation_test():
    same = permutation_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_perm=2000)
    assert same.statistic == 0.0 and same.p_value == 1.0
    apart = permutation_test(np.arange(10) + 100.0, np.arange(10), n_perm=2000)
    assert apart.statistic == 100.0 and apart.p_value < 0.002


def test_paired_test():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    res = paired_test(a + 1.0, a, n_perm=2000)
    assert res.mean_diff.estimate == pytest.approx(1.0)
    assert res.p_value == pytest.approx(2 / 256, abs=0.01)  # exact sign-flip p for 8 equal positive diffs
    with pytest.raises(ValueError):
        paired_test([1.0], [1.0, 2.0])
