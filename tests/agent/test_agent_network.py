import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.agent.network import INVALID_Q, NetworkConfig, QNetwork, greedy_action, masked_q
from jaxnas.env.types import Observation

L = 6
B = 32  # one batch size everywhere so each model compiles once
TINY = dict(d_model=16, num_layers=1, num_heads=2, mlp_dim=32)


def random_obs(seed, batch, num_values, length=L):
    rng = np.random.default_rng(seed)
    mask = rng.random((batch, length * num_values)) < 0.6
    mask[:, 0] = True  # at least one valid action per row
    return Observation(
        tokens=rng.integers(0, num_values, (batch, length), dtype=np.int32),
        action_mask=mask,
        features=rng.normal(size=(batch, 3)).astype(np.float32),
        visited=(rng.random((batch, length * num_values)) < 0.3) & mask,
    )


def build(num_values, **overrides):
    cfg = NetworkConfig(num_values=num_values, length=L, **{**TINY, **overrides})
    net = QNetwork(cfg)
    init = jax.jit(net.init)
    params = init(jax.random.PRNGKey(0), random_obs(1, B, num_values))
    return cfg, net, params, init


@pytest.fixture(scope="module", params=[4, 5], ids=["micro_V4", "macro_V5"])
def model(request):
    cfg, net, params, init = build(request.param)

    @jax.jit
    def q_and_value(params, obs):
        q, state = net.apply(
            params, obs, capture_intermediates=lambda m, _: m.name == "value_out"
        )
        return q, state["intermediates"]["value_out"]["__call__"][0][:, 0]

    return cfg, init, params, q_and_value


def test_output_shape_dtype_and_finite(model):
    cfg, _, params, q_and_value = model
    q, _ = q_and_value(params, random_obs(2, B, cfg.num_values))
    assert q.shape == (B, L * cfg.num_values) and q.dtype == jnp.float32
    assert np.isfinite(np.asarray(q)).all()


def test_init_is_deterministic_given_key(model):
    cfg, init, params, _ = model
    obs = random_obs(1, B, cfg.num_values)
    same = init(jax.random.PRNGKey(0), obs)
    other = init(jax.random.PRNGKey(7), obs)
    jax.tree.map(np.testing.assert_array_equal, params, same)
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), params, other))
    assert max(diffs) > 0


def test_dueling_mean_over_valid_actions_equals_value(model):
    cfg, _, params, q_and_value = model
    obs = random_obs(3, B, cfg.num_values)
    q, value = q_and_value(params, obs)
    mask = np.asarray(obs.action_mask)
    valid_mean = (np.asarray(q) * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(valid_mean, value, atol=1e-5)
    # The mean is over valid actions only, not all of them.
    assert np.abs(np.asarray(q).mean(1) - value).max() > 1e-3


def test_advantage_of_action_p_v_is_read_off_position_p():
    # Without attention layers nothing mixes positions, so Q(p, v) - Q(p, v') can only depend
    # on token p; this pins the action layout a = p * V + v.
    V = 5
    _, net, params, _ = build(V, num_layers=0)
    obs = random_obs(4, B, V)
    p = 2
    # Row 1 is row 0 with token p changed.
    obs.tokens[1], obs.action_mask[1] = obs.tokens[0], obs.action_mask[0]
    obs.visited[1] = obs.visited[0]
    obs.tokens[1, p] = (obs.tokens[0, p] + 1) % V
    q = np.asarray(jax.jit(net.apply)(params, obs))[:2].reshape(2, L, V)
    within_row = q - q[:, :, :1]
    moved = np.abs(within_row[0] - within_row[1]).max(axis=1)
    assert moved[p] > 1e-4
    np.testing.assert_allclose(np.delete(moved, p), 0.0, atol=1e-5)


def test_masked_argmax_never_picks_invalid(model):
    cfg, _, params, q_and_value = model
    obs = random_obs(5, B, cfg.num_values)
    q, _ = q_and_value(params, obs)
    # Make an invalid action the unmasked favourite in every row.
    q = np.array(q)
    q[np.arange(B), np.argmin(obs.action_mask, axis=1)] = 1e6
    actions = np.asarray(jax.jit(greedy_action)(q, obs.action_mask))
    assert obs.action_mask[np.arange(B), actions].all()
    mq = np.asarray(jax.jit(masked_q)(q, obs.action_mask))
    assert np.isfinite(mq).all() and (mq[~obs.action_mask] == INVALID_Q).all()
