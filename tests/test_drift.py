"""exporter/drift.py against independent computations (scipy-free textbook formulas)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmon.exporter import drift


def test_bin_counts_follow_prometheus_le_semantics() -> None:
    # a value equal to an edge belongs to the bucket ending at that edge (value <= le)
    counts = drift.bin_counts([1.0, 2.0, 2.0000001, 5.0, 9.0, float("nan"), float("inf")],
                              [2.0, 5.0])
    assert counts.tolist() == [2.0, 2.0, 1.0]


def test_psi_by_hand() -> None:
    p, q = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.25] * 4)
    want = sum((a - b) * math.log(a / b) for a, b in zip(p, q, strict=True))
    assert drift.psi(p, q) == pytest.approx(want, rel=1e-12)


def test_epsilon_keeps_empty_bins_finite() -> None:
    p, q = np.array([0.0, 1.0]), np.array([0.5, 0.5])
    e = drift.EPSILON
    want = (e - 0.5) * math.log(e / 0.5) + 0.5 * math.log(1 / 0.5)
    assert drift.psi(p, q) == pytest.approx(want, rel=1e-12)
    assert math.isfinite(drift.js_distance(p, q))


def test_js_distance_by_hand_and_bounds() -> None:
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (p + q) / 2
    kl = lambda a, b: float(np.sum(a * np.log2(a / b)))  # noqa: E731
    assert drift.js_distance(p, q) == pytest.approx(math.sqrt(0.5 * kl(p, m) + 0.5 * kl(q, m)))
    assert drift.js_distance(q, q) == 0.0
    assert drift.js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) <= 1.0


def test_ks_binned_is_the_max_cdf_gap_at_the_edges() -> None:
    p, q = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.25] * 4)
    # cumulative 0.1, 0.3, 0.6 vs 0.25, 0.5, 0.75: gaps 0.15, 0.2, 0.15
    assert drift.ks_binned(p, q) == pytest.approx(0.2)


def test_categorical_drift_total_variation_and_chi_square() -> None:
    ref = {"a": 0.6, "b": 0.4, "__unseen__": 0.0}
    d = drift.categorical_drift({"a": 30, "b": 50, "__unseen__": 20}, ref)
    assert d.n == 100
    assert d.ks == pytest.approx(0.5 * (0.3 + 0.1 + 0.2))
    e = drift.EPSILON
    want = 100 * ((0.3 - 0.6) ** 2 / 0.6 + (0.5 - 0.4) ** 2 / 0.4 + (0.2 - e) ** 2 / e)
    assert d.chi2 == pytest.approx(want)
    with pytest.raises(ValueError, match="not in the reference"):
        drift.categorical_drift({"zzz": 1}, ref)


def test_empty_window_is_an_error_not_nan() -> None:
    with pytest.raises(ValueError, match="empty window"):
        drift.binned_drift([0, 0, 0], [0.3, 0.3, 0.4])


def test_ks_critical_is_the_textbook_value() -> None:
    # c(0.05) = 1.358 for the two-sample KS test
    assert drift.ks_critical(100, 100, 0.05) == pytest.approx(1.3581 * math.sqrt(0.02), rel=1e-3)
    # Bonferroni over 10 tests = alpha / 10
    assert drift.ks_critical(100, 100, 0.05, tests=10) == pytest.approx(
        drift.ks_critical(100, 100, 0.005))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=12).filter(lambda c: sum(c) > 0),
       st.integers(0, 2**31))
def test_statistics_are_non_negative_and_zero_on_identity(counts: list[int], seed: int) -> None:
    ref = np.random.default_rng(seed).dirichlet(np.ones(len(counts)))
    d = drift.binned_drift(counts, ref)
    assert d.psi >= 0 and 0 <= d.ks <= 1 and 0 <= d.js <= 1
    same = drift.binned_drift(np.asarray(counts), np.asarray(counts) / sum(counts))
    assert same.psi == pytest.approx(0, abs=1e-12) and same.ks == pytest.approx(0, abs=1e-12)


def test_tv_critical_is_the_bretagnolle_huber_carol_bound() -> None:
    # BHC: P(sum |p_hat - p| >= 2 eps) <= 2^k exp(-2 n eps^2) for a sample of n over k
    # categories; TV = 0.5 sum |.|. With the reference known exactly (m -> infinity) the critical
    # TV eps solves 2^k exp(-2 n eps^2) = alpha.
    n, k, alpha = 400, 5, 0.01
    eps = drift.tv_critical(n, 1e18, alpha, categories=k)
    assert 2**k * math.exp(-2 * n * eps**2) == pytest.approx(alpha, rel=1e-9)
    # two samples: the same bound on the effective size n m / (n + m)
    assert drift.tv_critical(n, 600, alpha, categories=k) == pytest.approx(
        drift.tv_critical(n * 600 / (n + 600), 1e18, alpha, categories=k), rel=1e-9)
    # Bonferroni over 10 tests = alpha / 10; more categories need a larger distance
    assert drift.tv_critical(n, 600, alpha, k, tests=10) == pytest.approx(
        drift.tv_critical(n, 600, alpha / 10, k))
    assert drift.tv_critical(n, 600, alpha, k + 1) > drift.tv_critical(n, 600, alpha, k)


def test_module_docstring_examples() -> None:
    result = doctest.testmod(drift)
    assert result.attempted >= 3 and result.failed == 0
