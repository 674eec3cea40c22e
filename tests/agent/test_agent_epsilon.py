import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.agent.epsilon import apex_epsilons, epsilon_greedy
from jaxnas.agent.network import greedy_action
from jaxnas.errors import ConfigError

A = 24
VALID = np.array([0, 3, 4, 7, 11, 12, 18, 23])
MASK = np.zeros(A, bool)
MASK[VALID] = True

eps_greedy = jax.jit(epsilon_greedy)


def test_apex_schedule_values():
    eps = np.asarray(apex_epsilons(32))
    assert eps.dtype == np.float32 and eps.shape == (32,)
    np.testing.assert_allclose(eps[0], 0.4, rtol=1e-7)
    np.testing.assert_allclose(eps[31], 0.4**8, rtol=1e-6)
    np.testing.assert_allclose(eps[10], 0.4 ** (1 + 7 * 10 / 31), rtol=1e-6)
    assert (np.diff(eps) < 0).all()
    np.testing.assert_array_equal(apex_epsilons(1), np.float32([0.4]))
    with pytest.raises(ConfigError):
        apex_epsilons(0)


def _batch(n, favourite):
    q = np.zeros((n, A), np.float32)
    q[:, favourite] = 5.0
    return q, np.broadcast_to(MASK, (n, A))


def test_eps_one_is_uniform_over_valid_actions():
    n = 16000
    q, mask = _batch(n, favourite=VALID[2])
    actions = np.asarray(eps_greedy(jax.random.PRNGKey(0), q, mask, np.ones(n, np.float32)))
    counts = np.bincount(actions, minlength=A)
    assert counts[~MASK].sum() == 0
    expected = n / len(VALID)
    chi2 = ((counts[VALID] - expected) ** 2 / expected).sum()
    assert chi2 < 24.3  # chi-square, 7 dof, p = 0.001


def test_eps_zero_is_greedy_and_mixed_rate_matches():
    n = 4000
    key = jax.random.PRNGKey(1)
    rng = np.random.default_rng(0)
    q = rng.normal(size=(n, A)).astype(np.float32)
    mask = rng.random((n, A)) < 0.5
    mask[:, 5] = True
    greedy = np.asarray(jax.jit(greedy_action)(q, mask))
    np.testing.assert_array_equal(greedy, np.where(mask, q, -np.inf).argmax(1))
    np.testing.assert_array_equal(eps_greedy(key, q, mask, np.zeros(n, np.float32)), greedy)
    actions = np.asarray(eps_greedy(key, q, mask, np.full(n, 0.5, np.float32)))
    assert mask[np.arange(n), actions].all()
    # A random action coincides with the greedy one with probability 1 / #valid.
    expected = np.mean(0.5 * (1 - 1 / mask.sum(1)))
    assert abs(np.mean(actions != greedy) - expected) < 0.03
