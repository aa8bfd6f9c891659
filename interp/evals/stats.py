"""Shared statistics: bootstrap CIs, Wilson intervals, permutation tests, paired comparisons.

Every probe and eval uses these rather than re-implementing them. All resampling is seeded.

- bootstrap_ci: percentile bootstrap of a statistic over items (default the mean).
- wilson_interval: score interval for a binomial proportion k / n.
- permutation_test: two-sided test of a difference in means between two independent groups.
- paired_test: two models on the same items; sign-flip permutation test on per-item differences
  plus a bootstrap CI of the mean difference.
- t_test_power / minimum_detectable_effect: power of a two-sided one-sample (paired) t-test, and
  the smallest mean it detects with 80 % power (noncentral t): the effect a null result rules out.
- seed_summary: per-seed values (training runs, the unit of replication) -> mean, t-interval,
  one-sample t-test p and the MDE.
- proportion_t_interval: per-seed proportions (accuracies, rates) -> mean with a t-interval on the
  logit scale, inside [0, 1] by construction (CIs of proportions never leave [0, 1]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

DEFAULT_BOOT = 10_000


@dataclass(frozen=True)
class Interval:
    estimate: float
    lo: float
    hi: float
    level: float = 0.95
    n: int = 0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def bootstrap_ci(
    values: np.ndarray | list[float],
    stat: Callable[[np.ndarray], np.ndarray] | None = None,
    n_boot: int = DEFAULT_BOOT,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap CI of `stat` (vectorised over axis=1; default mean) over items.

    estimate = stat(values); resamples n items with replacement n_boot times.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("bootstrap_ci needs a non-empty 1-d array")
    f = stat or (lambda a: a.mean(axis=-1))
    est = float(f(x[None, :])[0])
    if x.size == 1:
        return Interval(est, est, est, level, 1)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    chunk = max(1, 2_000_000 // x.size)  # bound memory of the (chunk, n) index matrix
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, x.size, size=(m, x.size))
        reps[start:start + m] = f(x[idx])
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a])
    return Interval(est, float(lo), float(hi), level, int(x.size))



def ratio_of_means_ci(num: np.ndarray | list[float], den: np.ndarray | list[float], n_boot: int = DEFAULT_BOOT,
                      level: float = 0.95, seed: int = 0) -> Interval:
    """mean(num) / mean(den) with a paired percentile bootstrap CI: items (num_i, den_i) resampled together
    (`bootstrap_ci` over item indices). E.g. the recovered fraction of activation patching."""
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("ratio_of_means_ci needs two 1-d arrays of one length")

    def ratio(idx: np.ndarray) -> np.ndarray:
        k = idx.astype(np.int64)
        return a[k].mean(axis=-1) / b[k].mean(axis=-1)
    return bootstrap_ci(np.arange(a.size, dtype=np.float64), ratio, n_boot, level, seed)

def wilson_interval(k: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for k successes in n trials."""
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    from scipy.stats import norm  # scipy comes with transformers' stack; imported lazily

    z = float(norm.ppf(1 - (1 - level) / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else float(max(0.0, centre - half))  # exact 0 / 1 at the edges, not rounding noise
    hi = 1.0 if k == n else float(min(1.0, centre + half))
    return Interval(p, lo, hi, level, n)


@dataclass(frozen=True)
class TestResult:
    statistic: float  # observed difference (a - b)
    p_value: float
    n_a: int
    n_b: int
    n_perm: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def permutation_test(a: np.ndarray | list[float], b: np.ndarray | list[float], n_perm: int = DEFAULT_BOOT,
                     seed: int = 0) -> TestResult:
    """Two-sided permutation test of mean(a) - mean(b); p = (1 + #{|perm| >= |obs|}) / (1 + n_perm)."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.size == 0 or xb.size == 0:
        raise ValueError("permutation_test needs two non-empty groups")
    pooled = np.concatenate([xa, xb])
    obs = xa.mean() - xb.mean()
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_perm, 1000):
        m = min(1000, n_perm - start)
        perms = np.argsort(rng.random((m, pooled.size)), axis=1)
        shuffled = pooled[perms]
        diff = shuffled[:, : xa.size].mean(1) - shuffled[:, xa.size:].mean(1)
        hits += int((np.abs(diff) >= abs(obs) - 1e-12).sum())
    return TestResult(float(obs), (1 + hits) / (1 + n_perm), int(xa.size), int(xb.size), n_perm)


@dataclass(frozen=True)
class PairedResult:
    mean_diff: Interval  # mean of (a - b) with bootstrap CI
    p_value: float  # sign-flip permutation test, two-sided
    n: int

    def to_dict(self) -> dict[str, object]:
        return {"mean_diff": self.mean_diff.to_dict(), "p_value": self.p_value, "n": self.n}


def paired_test(a: np.ndarray | list[float], b: np.ndarray | list[float], n_perm: int = DEFAULT_BOOT,
                seed: int = 0) -> PairedResult:
    """Compare two models scored on the same items: per-item d = a - b."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape or xa.ndim != 1 or xa.size == 0:
        raise ValueError("paired_test needs two non-empty arrays of the same length")
    d = xa - xb
    obs = d.mean()
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_perm, 1000):
        m = min(1000, n_perm - start)
        signs = rng.choice([-1.0, 1.0], size=(m, d.size))
        hits += int((np.abs((signs * d).mean(1)) >= abs(obs) - 1e-12).sum())
    return PairedResult(bootstrap_ci(d, seed=seed), (1 + hits) / (1 + n_perm), int(d.size))


def t_test_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of a two-sided one-sample (or paired) t-test of mean 0 with `n` units, when the true
    mean is `effect` and the units' standard deviation is `sd`: P(|T| > t_crit) under the
    noncentral t with df = n - 1 and noncentrality effect * sqrt(n) / sd (scipy.stats.nct)."""
    from scipy import stats

    if n < 2 or sd <= 0:
        raise ValueError("t_test_power needs n >= 2 and sd > 0")
    df, nc = n - 1, abs(effect) * np.sqrt(n) / sd
    crit = stats.t.ppf(1 - alpha / 2, df)
    far = stats.nct.cdf(-crit, df, nc)  # the wrong-sign tail: negligible, and NaN in scipy when tiny
    return float(stats.nct.sf(crit, df, nc) + (0.0 if not np.isfinite(far) else far))


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean a two-sided one-sample / paired t-test with `n` units of standard
    deviation `sd` detects with probability `power` at level `alpha` (root of t_test_power - power;
    scipy.optimize.brentq). What a null result with these units rules out."""
    from scipy import optimize

    if not 0 < power < 1:
        raise ValueError("power must be in (0, 1)")
    hi = sd * 3.0 / np.sqrt(n)  # below the MDE's normal approximation times 2: widen until power is reached
    while t_test_power(hi, sd, n, alpha) < power:
        hi *= 2.0
    return float(optimize.brentq(lambda d: t_test_power(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-10 * sd))


def proportion_t_interval(values: np.ndarray | list[float], level: float = 0.95) -> Interval:
    """Mean of per-seed proportions (each in [0, 1]: an accuracy, a rate) with a t-interval on the
    logit scale, mapped back: inside [0, 1] by construction.

        p = mean(values), se = sd(values, ddof=1) / sqrt(n), t = t_{(1 + level) / 2, n - 1}
        lo, hi = expit(logit(p) -/+ t * se / (p (1 - p)))

    Why this interval: seeds (training runs) are the unit of replication and there are few of them
    (2 to 20), so the small-sample t quantile is needed; a percentile bootstrap over 3 seeds returns
    about [min, max], which covers the mean only ~75 % of the time. The plain t-interval
    p -/+ t * se can leave [0, 1] (accuracies near chance or near 1, e.g. 0.118 [-0.022, 0.257] over
    3 seeds). This is that same t-interval built for logit(p), with the delta-method standard error
    se / (p (1 - p)) (the logit-transformed interval Stata's `proportion` uses): it is centred on the
    reported mean (which it always contains), agrees with p -/+ t * se to first order when p is far
    from 0 and 1, and grows asymmetric towards the nearer bound. Unlike the mean of per-seed logits,
    it needs no continuity correction for a seed at exactly 0 or 1 and estimates the same quantity
    as the reported mean. When every seed gives the same value (sd 0, including all 0 or all 1),
    lo = hi = p, as the plain t-interval gives.
    """
    from scipy import stats
    from scipy.special import expit, logit

    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError("proportion_t_interval needs at least 2 per-seed values")
    if not np.all((v >= 0) & (v <= 1)):
        raise ValueError("proportion_t_interval needs proportions in [0, 1]")
    n, p = int(v.size), float(v.mean())
    se = float(v.std(ddof=1) / np.sqrt(n))
    if se == 0 or p <= 0 or p >= 1:  # every seed equal (p in {0, 1} forces that)
        return Interval(p, p, p, level, n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se / (p * (1 - p))
    lo, hi = expit(logit(p) - half), expit(logit(p) + half)
    return Interval(p, float(lo), float(hi), level, n)


def seed_summary(values: np.ndarray | list[float], alpha: float = 0.05, proportion: bool = False) -> dict[str, float]:
    """Mean, t-interval (df = n - 1), one-sample t-test p against 0, sd and the minimum detectable
    effect at 80% power of per-seed values; with one seed only n_seeds and mean. `proportion=True`
    (values in [0, 1], e.g. a rate per seed): lo / hi are `proportion_t_interval`'s logit-scale
    t-interval, inside [0, 1]; the other figures are unchanged."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    out: dict[str, float] = {"n_seeds": n, "mean": float(v.mean()) if n else float("nan")}
    if n >= 2:
        sd = float(v.std(ddof=1))
        half = float(stats.t.ppf(1 - alpha / 2, n - 1) * sd / np.sqrt(n))
        lo, hi = out["mean"] - half, out["mean"] + half
        if proportion:
            iv = proportion_t_interval(v, 1 - alpha)
            lo, hi = iv.lo, iv.hi
        out |= {"sd": sd, "lo": lo, "hi": hi,
                "p": float(stats.ttest_1samp(v, 0.0).pvalue) if sd > 0 else float("nan"),
                "mde_80": minimum_detectable_effect(sd, n, alpha) if sd > 0 else float("nan")}
    return out


def holm_adjusted(pvalues: np.ndarray | list[float], n_tests: int | None = None) -> np.ndarray:
    """Holm's step-down adjusted p-values (the family-wise error rate controlled at any level):
    with p sorted ascending, p_adj_(k) = max_{j <= k} min(1, (m - j + 1) p_(j)), returned in the
    input order; reject at level alpha where p_adj <= alpha (statsmodels' multipletests(method='holm')).

    `n_tests` (m) may exceed len(pvalues) for a family of tests not all run yet: the missing ones
    count as p = 1, the most conservative case (Holm is monotone in every p), so a test that
    survives now survives whatever the missing p-values turn out to be."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("holm_adjusted needs a 1-d array of p-values in [0, 1]")
    m = p.size if n_tests is None else n_tests
    if m < p.size:
        raise ValueError(f"n_tests {m} is below the {p.size} p-values given")
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(p.size)) * p[order])  # (m - j + 1) p_(j), j from 1
    out = np.empty_like(p)
    out[order] = np.maximum.accumulate(scaled)
    return out
