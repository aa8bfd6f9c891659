import numpy as np
import pytest

from interp.evals.stats import bootstrap_ci, holm_adjusted, paired_test, permutation_test, wilson_interval


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


def test_minimum_detectable_effect_has_the_stated_power_by_simulation():
    """Independent check: simulate 20,000 t-tests of n = 20 units at the MDE (sd 1): about 80 % reject."""
    from scipy import stats as st

    from interp.evals.stats import minimum_detectable_effect, t_test_power

    d = minimum_detectable_effect(1.0, 20)
    assert t_test_power(d, 1.0, 20) == pytest.approx(0.8, abs=1e-8)
    assert 0.6265 < d < 0.70  # above the normal approximation (1.96 + 0.8416) / sqrt(20) = 0.6265
    rng = np.random.default_rng(0)
    x = rng.normal(d, 1.0, size=(20_000, 20))
    rejected = st.ttest_1samp(x, 0.0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=0.01)
    assert minimum_detectable_effect(2.0, 20) == pytest.approx(2 * d, rel=1e-6)  # scales with sd
    assert minimum_detectable_effect(1.0, 80) < d / 1.9  # ~ 1 / sqrt(n)


def test_ratio_of_means_ci_resamples_items_in_pairs():
    from interp.evals.stats import ratio_of_means_ci

    den = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    r = ratio_of_means_ci(0.5 * den, den)  # every item has ratio 0.5: any paired resample gives 0.5 exactly
    assert (r.estimate, r.lo, r.hi) == pytest.approx((0.5, 0.5, 0.5), abs=1e-12)
    r = ratio_of_means_ci([1.0, 3.0, 2.0, 6.0], [2.0, 2.0, 4.0, 4.0])
    assert r.estimate == pytest.approx(12 / 12) and r.lo < 1.0 < r.hi


def test_seed_summary_known_answer():
    from interp.evals.stats import seed_summary

    s = seed_summary([1.0, 2.0, 3.0])
    # mean 2, sd 1, half-width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051; t = 2 sqrt(3) = 3.4641, p(df 2) = 0.07418
    assert s["n_seeds"] == 3 and s["mean"] == 2.0 and s["sd"] == 1.0
    assert s["lo"] == pytest.approx(2 - 2.484138, abs=1e-5) and s["hi"] == pytest.approx(2 + 2.484138, abs=1e-5)
    assert s["p"] == pytest.approx(0.07418, abs=1e-4)
    assert s["mde_80"] > s["hi"] - s["mean"]  # 80% power needs more than the CI half-width
    assert seed_summary([0.5]) == {"n_seeds": 1, "mean": 0.5}


def test_proportion_t_interval_known_answer_inside_0_1():
    """Seeds 0.0, 0.05, 0.25: mean +- t se is [-0.2286, 0.4286] (outside [0, 1]). On the logit scale:
    p = 0.1, se = 0.0763763, t(0.975, 2) = 4.302653, half = t se / (0.1 * 0.9) = 3.651339,
    logit(0.1) = -2.197225 -> expit(-5.848564, 1.454114) = [0.0028757, 0.8106309]."""
    from interp.evals.stats import proportion_t_interval

    iv = proportion_t_interval([0.0, 0.05, 0.25])
    assert (iv.estimate, iv.n, iv.level) == (pytest.approx(0.1), 3, 0.95)
    assert (iv.lo, iv.hi) == pytest.approx((0.0028757, 0.8106309), abs=1e-7)
    # far from the bounds it is the ordinary t-interval to first order: 0.5 +- 0.024841 vs +- 0.024821
    iv = proportion_t_interval([0.49, 0.5, 0.51])
    assert (iv.lo, iv.hi) == pytest.approx((0.475179, 0.524821), abs=1e-6)
    assert proportion_t_interval([1.0, 1.0]).to_dict() == {"estimate": 1.0, "lo": 1.0, "hi": 1.0, "level": 0.95, "n": 2}
    assert proportion_t_interval([0.0, 0.0, 0.0]).hi == 0.0


def test_proportion_t_interval_never_leaves_0_1_and_contains_the_mean():
    from interp.evals.stats import proportion_t_interval

    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 20):
        for centre in (0.0, 0.02, 0.5, 0.97, 1.0):
            v = np.clip(centre + rng.normal(0, 0.05, n), 0, 1)
            iv = proportion_t_interval(v)
            assert 0.0 <= iv.lo <= iv.estimate <= iv.hi <= 1.0
    with pytest.raises(ValueError):
        proportion_t_interval([0.5])
    with pytest.raises(ValueError):
        proportion_t_interval([0.5, 1.2])


def test_seed_summary_proportion_uses_the_logit_interval():
    from interp.evals.stats import seed_summary

    plain, prop = seed_summary([0.0, 0.05, 0.25]), seed_summary([0.0, 0.05, 0.25], proportion=True)
    assert plain["lo"] < 0 and (prop["lo"], prop["hi"]) == pytest.approx((0.0028757, 0.8106309), abs=1e-7)
    assert {k: v for k, v in prop.items() if k not in ("lo", "hi")} == {k: v for k, v in plain.items() if k not in ("lo", "hi")}


def test_holm_adjusted_matches_statsmodels():
    """Known answers from statsmodels 0.15.0 multipletests(p, method='holm')[1], run outside the project."""
    np.testing.assert_allclose(holm_adjusted([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_adjusted([0.0012, 0.2, 0.03, 0.04, 0.5, 0.01, 0.9, 0.04]),
                               [0.0096, 0.6, 0.18, 0.2, 1.0, 0.07, 1.0, 0.2])


def test_holm_adjusted_with_tests_missing_is_an_upper_bound():
    """Missing tests counted as p = 1 give adjusted p-values no smaller than any completion of the family."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        full = rng.uniform(0, 0.1, size=8) ** rng.uniform(0.5, 3)
        part = holm_adjusted(full[:5], n_tests=8)
        assert np.all(part >= holm_adjusted(full)[:5] - 1e-15)
    np.testing.assert_allclose(holm_adjusted([0.01], n_tests=8), [0.08])
    with pytest.raises(ValueError):
        holm_adjusted([0.01, 0.02], n_tests=1)
    with pytest.raises(ValueError):
        holm_adjusted([0.01, float("nan")])
