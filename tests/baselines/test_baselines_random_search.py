"""Random search against the exact distribution of the best of k draws without replacement."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from jaxnas.baselines import run_many

SEEDS = 1000
QUERIES = 100


def expected_max_without_replacement(values: np.ndarray, k: int) -> float:
    """E[max of k distinct uniform draws] = sum_j v_(j) C(j-1, k-1) / C(N, k) over the sorted
    values v_(1) <= ... <= v_(N) (ties do not matter: only the rank of the maximum does)."""
    v = np.sort(np.asarray(values, np.float64))
    n = len(v)
    j = np.arange(k, n + 1)  # the maximum has rank >= k
    lg = np.vectorize(math.lgamma)
    log_c_j = lg(j) - lg(k) - lg(j - k + 1)  # log C(j-1, k-1)
    log_c_n = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    p = np.exp(log_c_j - log_c_n)
    assert abs(p.sum() - 1.0) < 1e-9
    return float((p * v[k - 1 :]).sum())


def test_expectation_formula_on_a_tiny_case():
    # 3 values, 2 draws: pairs {1,2},{1,3},{2,3} -> maxima 2,3,3.
    assert expected_max_without_replacement(np.array([1.0, 3.0, 2.0]), 2) == pytest.approx(8 / 3)
    assert expected_max_without_replacement(np.array([1.0, 3.0, 2.0]), 3) == pytest.approx(3.0)


@pytest.fixture(scope="module")
def real_runs(micro_class_object):

    values = micro_class_object
    # Random search ignores the neighbour table except for its shape.
    neighbours = np.full((values.shape[0], 24), -1, np.int32)
    res = run_many("random_search", jax.random.PRNGKey(7), neighbours, values, QUERIES, SEEDS)
    return values, jax.tree_util.tree_map(np.asarray, res)


@pytest.mark.parametrize("k", [1, 2, 5, 20, 60, 100])
def test_mean_best_of_k_matches_exact_expectation(real_runs, k):
    values, res = real_runs
    best_k = res.best_so_far[:, k - 1].astype(np.float64)
    expected = expected_max_without_replacement(values, k)
    sem = best_k.std(ddof=1) / math.sqrt(SEEDS)
    assert abs(best_k.mean() - expected) < 4 * sem + 1e-6, (k, best_k.mean(), expected, sem)


def test_real_table_queries_distinct_and_running_max(real_runs):
    values, res = real_runs
    for s in range(0, SEEDS, 97):
        q = res.queried[s]
        assert len(np.unique(q)) == QUERIES
        np.testing.assert_array_equal(res.best_so_far[s], np.maximum.accumulate(values[q]))
    # Every architecture is equally likely as the first query: 1000 first draws out of 4096
    # cover about 887 distinct ones (sd ~ 13); a sampler concentrating on a few would fail.
    assert len(np.unique(res.queried[:, 0])) > 840
