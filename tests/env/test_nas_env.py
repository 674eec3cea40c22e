"""The JAX environment against the plain-Python reference in ``reference.py``.

Compilation dominates on CPU, so every jitted function is created once per module and each
static configuration (space, task, reward mode, normalisation, horizon, start) compiles once.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.data import load_table
from jaxnas.env import (
    NUM_FEATURES,
    EnvState,
    StepType,
    TimeStep,
    make_env,
    normalise,
    random_valid_action,
)
from jaxnas.errors import ConfigError
from jaxnas.spaces import make_space


def _load_reference():
    # Loaded by path under a unique name so it cannot clash with another tests/*/reference.py.
    spec = importlib.util.spec_from_file_location(
        "jaxnas_tests_env_reference", Path(__file__).with_name("reference.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()

BATCH = 6

# (space, task, reward mode, normalisation, horizon, with a test column): every reward mode with
# both normalisations in both spaces, several horizons (1 = the first step is the last).
CONFIGS = [
    ("micro", "class_object", "value", "minmax", 1, False),
    ("micro", "room_layout", "value", "rank", 6, True),
    ("micro", "autoencoder", "improvement", "minmax", 12, False),
    ("micro", "class_object", "improvement", "rank", 4, True),
    ("micro", "segmentsemantic", "delta", "minmax", 5, True),
    ("micro", "class_object", "delta", "rank", 9, False),
    ("macro", "segmentsemantic", "value", "minmax", 7, True),
    ("macro", "class_object", "value", "rank", 2, False),
    ("macro", "room_layout", "improvement", "minmax", 5, True),
    ("macro", "autoencoder", "improvement", "rank", 10, False),
    ("macro", "class_object", "delta", "minmax", 3, False),
    ("macro", "room_layout", "delta", "rank", 8, True),
]


# -- helpers -------------------------------------------------------------------------------------
def tree_np(tree):
    return jax.tree.map(np.asarray, tree)


def at(tree, *idx):
    return jax.tree.map(lambda x: x[idx], tree)


def assert_tree_close(a, b):
    """Equal trees: exact for integers and booleans, float32 tolerance for floats."""

    def check(x, y):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(x, y)

    jax.tree.map(check, a, b)


def synthetic_test(valid: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (valid * 0.5 + rng.normal(size=valid.shape)).astype(np.float32)


def with_test_columns(table, folder: Path, seed: int):
    """The table re-read from a CSV that also has ``test:<task>`` columns (synthetic values)."""
    valid = np.asarray(table.valid)
    test = synthetic_test(valid, seed)
    header = ["arch", *table.tasks, *("test:" + t for t in table.tasks)]
    lines = [",".join(header)]
    for i, name in enumerate(table.names):
        cells = [repr(float(x)) for x in (*valid[:, i], *test[:, i])]
        lines.append(",".join([name, *cells]))
    path = folder / f"{table.space}.csv"
    path.write_text("\n".join(lines) + "\n")
    loaded = load_table(table.space, data=path, use_cache=False)
    np.testing.assert_array_equal(np.asarray(loaded.test), test)
    return loaded


def reference_for(env, table, task: str):
    space = ref.ReferenceSpace(np.asarray(table.encodings).tolist(), env.space.num_values)
    test = table.test_of(task)
    return ref.ReferenceEnv(
        space,
        np.asarray(table.valid_of(task)).tolist(),
        None if test is None else np.asarray(test).tolist(),
        horizon=env.horizon,
        reward_mode=env.reward_mode,
        normalisation=env.normalisation,
    )


def assert_matches(ts, expected, where=""):
    """One timestep (host arrays) against the reference's dict."""
    assert int(ts.step_type) == expected["step_type"], where
    assert ts.reward.dtype == np.float32 and ts.step_type.dtype == np.int32
    assert math.isclose(float(ts.reward), expected["reward"], rel_tol=1e-6, abs_tol=1e-6), where
    assert float(ts.discount) == 1.0, where
    obs, eobs = ts.observation, expected["observation"]
    assert obs.tokens.tolist() == eobs["tokens"], where
    assert obs.action_mask.tolist() == eobs["action_mask"], where
    assert obs.visited.tolist() == eobs["visited"], where
    assert obs.features.shape == (NUM_FEATURES,) and obs.features.dtype == np.float32
    np.testing.assert_allclose(obs.features, eobs["features"], rtol=1e-6, atol=1e-6, err_msg=where)
    info, einfo = ts.info, expected["info"]
    assert int(info.arch) == einfo["arch"], where
    assert info.valid_metric == np.float32(einfo["valid_metric"]), where
    if math.isnan(einfo["test_metric"]):
        assert np.isnan(info.test_metric), where
    else:
        assert info.test_metric == np.float32(einfo["test_metric"]), where
    assert info.best_valid == np.float32(einfo["best_valid"]), where
    assert int(info.best_arch) == einfo["best_arch"], where
    assert int(info.distinct_queries) == einfo["distinct_queries"], where
    assert bool(info.truncated) == einfo["truncated"], where
    # truncation, never termination
    assert bool(TimeStep.truncated(ts)) == (expected["step_type"] == StepType.LAST), where
    assert not bool(TimeStep.terminated(ts)), where


def _episode(env, key, u, pick_valid, any_action):
    """Reset, then ``horizon`` steps: where ``pick_valid`` a random valid action (argmax of the
    uniform ``u`` over the mask), else ``any_action`` (often invalid). The randomness is drawn
    outside so the compiled function stays small."""
    state, first = env.reset(key)

    def body(carry, x):
        state, obs = carry
        u, pick, any_a = x
        valid_a = jnp.argmax(jnp.where(obs.action_mask, u, -1.0)).astype(jnp.int32)
        action = jnp.where(pick, valid_a, any_a)
        state, ts = env.step(state, action)
        return (state, ts.observation), (action, ts, state)

    _, (actions, steps, states) = jax.lax.scan(
        body, (state, first.observation), (u, pick_valid, any_action)
    )
    return first, actions, steps, states


# One unbatched compile per static configuration (vmap is tested separately below).
EPISODE = jax.jit(_episode)


def run_episodes(env, seed: int, batch: int = BATCH):
    """``batch`` episodes; host arrays with a leading batch axis."""
    rng = np.random.default_rng(seed)
    keys = jax.random.split(jax.random.PRNGKey(seed), batch)
    h, a = env.horizon, env.num_actions
    out = []
    for b in range(batch):
        args = (
            rng.uniform(size=(h, a)).astype(np.float32),
            rng.uniform(size=h) < 0.7,
            rng.integers(0, a, h).astype(np.int32),
        )
        out.append(tree_np(EPISODE(env, keys[b], *args)))
    return jax.tree.map(lambda *xs: np.stack(xs), *out)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spaces(tables):
    return {name: make_space(tables[name]) for name in ("micro", "macro")}


@pytest.fixture(scope="module")
def test_tables(tables, tmp_path_factory):
    folder = tmp_path_factory.mktemp("with_test")
    return {name: with_test_columns(tables[name], folder, i) for i, name in enumerate(("micro", "macro"))}


@pytest.fixture(scope="module")
def config_runs(tables, test_tables, spaces):
    """Per config: env, table, and the batched episodes (host arrays), run once."""
    out = {}
    for k, (space, task, mode, norm, horizon, has_test) in enumerate(CONFIGS):
        table = test_tables[space] if has_test else tables[space]
        env = make_env(
            table, task, horizon=horizon, reward_mode=mode, normalisation=norm, space=spaces[space]
        )
        out[k] = (env, table, task, run_episodes(env, 100 + k))
    return out


# -- normalisation -------------------------------------------------------------------------------
def test_normalise_small_cases():
    v = [3.0, 1.0, 2.0, 2.0, 5.0]
    np.testing.assert_allclose(normalise(v, "minmax"), [0.5, 0, 0.25, 0.25, 1], atol=1e-7)
    # sorted 1,2,2,3,5 -> ranks 0,(1+2)/2,(1+2)/2,3,4 -> / 4
    np.testing.assert_allclose(normalise(v, "rank"), [0.75, 0, 0.375, 0.375, 1], atol=1e-7)
    np.testing.assert_allclose(normalise([2.0, 2.0, 2.0], "rank"), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(normalise([2.0, 2.0], "minmax"), [0.0, 0.0])
    assert normalise(v, "rank").dtype == np.float32
    with pytest.raises(ValueError, match="zscore"):
        normalise(v, "zscore")


@pytest.mark.parametrize("space", ["micro", "macro"])
@pytest.mark.parametrize("norm", ["minmax", "rank"])
def test_env_scores_equal_reference_normalisation(tables, spaces, space, norm):
    table = tables[space]
    for task in table.tasks:
        valid = np.asarray(table.valid_of(task))
        env = make_env(table, task, normalisation=norm, space=spaces[space])
        score = np.asarray(env.score)
        expected = ref.NORMALISE[norm](valid.tolist())
        np.testing.assert_allclose(score, expected, rtol=0, atol=1e-6)
        assert 0.0 <= score.min() and score.max() <= 1.0
        if norm == "minmax" or (valid == valid.min()).sum() == 1:
            assert score.min() == 0.0
        if norm == "minmax" or (valid == valid.max()).sum() == 1:
            assert score.max() == 1.0
        # equal metrics get equal scores, higher metrics higher scores
        order = np.argsort(valid, kind="stable")
        sv, ss = valid[order], score[order]
        assert (ss[1:][sv[1:] == sv[:-1]] == ss[:-1][sv[1:] == sv[:-1]]).all()
        assert (ss[1:][sv[1:] > sv[:-1]] > ss[:-1][sv[1:] > sv[:-1]]).all()
        np.testing.assert_array_equal(np.asarray(env.valid), valid)
        assert np.isnan(np.asarray(env.test)).all() and not env.has_test


def test_rank_ties_are_averaged_on_real_data(micro_table):
    valid = np.asarray(micro_table.valid_of("class_object"))
    assert len(np.unique(valid)) < len(valid)  # the real table has ties
    score = normalise(valid, "rank")
    n = len(valid)
    for v in np.unique(valid)[:: 97]:
        below = (valid < v).sum()
        equal = (valid == v).sum()
        expected = (below + (equal - 1) / 2) / (n - 1)
        np.testing.assert_allclose(score[valid == v], expected, atol=1e-6)


# -- the environment against the reference -------------------------------------------------------
@pytest.mark.parametrize("k", range(len(CONFIGS)), ids=["-".join(map(str, c[:5])) for c in CONFIGS])
def test_episodes_match_reference(config_runs, k):
    env, table, task, (first, actions, steps, states) = config_runs[k]
    space, _, mode, norm, horizon, has_test = CONFIGS[k]
    assert env.has_test == has_test
    r = reference_for(env, table, task)
    starts = set()
    for b in range(BATCH):
        start = int(first.info.arch[b])
        starts.add(start)
        assert_matches(at(first, b), r.reset(start), f"reset {b}")
        assert int(at(first, b).step_type) == StepType.FIRST
        invalid_seen = 0
        for t in range(horizon):
            a = int(actions[b, t])
            invalid_seen += r.space.move(r.arch, a) is None
            expected = r.step(a)
            assert_matches(at(steps, b, t), expected, f"episode {b} step {t + 1}")
            st = at(states, b, t)
            assert int(st.t) == t + 1 and int(st.distinct) == len(r.visited)
            assert int(st.arch) == r.arch and int(st.best_arch) == r.best_arch
        assert int(steps.step_type[b, -1]) == StepType.LAST
        assert (steps.step_type[b, :-1] == StepType.MID).all()
        if mode == "improvement":
            # the return telescopes to the best score found minus the start score
            ret = float(steps.reward[b].sum())
            best = max(r.score[a] for a in r.visited)
            assert math.isclose(ret, best - r.score[start], abs_tol=1e-5)
        if mode == "delta":
            ret = float(steps.reward[b].sum())
            assert math.isclose(ret, r.score[r.arch] - r.score[start], abs_tol=1e-5)
    assert len(starts) > 1


def test_episodes_exercise_invalid_actions_and_revisits(config_runs):
    # The comparison above is only meaningful if the random policy hits the interesting cases.
    invalid = revisit = improved = 0
    for k, (env, table, task, (first, actions, steps, states)) in config_runs.items():
        mask = np.concatenate([first.observation.action_mask[:, None], steps.observation.action_mask], 1)
        taken = np.take_along_axis(mask[:, :-1], actions[..., None], axis=2)[..., 0]
        invalid += int((~taken).sum())
        distinct = states.distinct[:, -1]
        revisit += int((distinct < env.horizon + 1).sum())
        improved += int((steps.info.best_valid[:, -1] > first.info.valid_metric).sum())
    assert invalid > 10 and revisit > 10 and improved > 10


def test_value_and_info_units(config_runs):
    env, table, task, (first, actions, steps, states) = config_runs[1]  # micro value/rank, test
    np.testing.assert_array_equal(steps.reward, steps.observation.features[..., 0])
    np.testing.assert_allclose(
        steps.observation.features[..., 2], np.broadcast_to(np.arange(1, 7) / 6, (BATCH, 6)), rtol=1e-6
    )
    assert (first.observation.features[:, 2] == 0).all()
    test = np.asarray(table.test_of("room_layout"))
    np.testing.assert_array_equal(steps.info.test_metric, test[steps.info.arch])
    assert not np.isnan(steps.info.test_metric).any()
    env0, _, _, (first0, _, steps0, _) = config_runs[0]
    assert np.isnan(steps0.info.test_metric).all() and np.isnan(first0.info.test_metric).all()


def test_same_seed_same_trajectory_other_seed_other(config_runs):
    env, _, _, result = config_runs[2]
    again = run_episodes(env, 102)  # the fixture's seed for config 2
    jax.tree.map(np.testing.assert_array_equal, again, result)
    other = run_episodes(env, 7)
    assert (other[0].info.arch != result[0].info.arch).any()
    assert (other[1] != result[1]).any()


def test_fixed_start_architecture(tables, spaces, micro_table):
    start = micro_table.index("64-41414-3_13_113")
    env = make_env(micro_table, "autoencoder", horizon=12, reward_mode="improvement", start_arch=start, space=spaces["micro"])
    first, actions, steps, states = run_episodes(env, 3)
    assert (first.info.arch == start).all()
    assert (first.observation.tokens == np.array([3, 1, 3, 1, 1, 3])).all()
    assert len({tuple(a) for a in actions.tolist()}) > 1  # the walks still differ
    r = reference_for(env, micro_table, "autoencoder")
    for b in range(BATCH):
        r.reset(start)
        for t in range(env.horizon):
            assert_matches(at(steps, b, t), r.step(int(actions[b, t])), f"{b} {t}")


def test_make_env_errors(micro_table):
    with pytest.raises(ConfigError, match="reward mode"):
        make_env(micro_table, "class_object", reward_mode="best")
    with pytest.raises(ConfigError, match="normalisation"):
        make_env(micro_table, "class_object", normalisation="zscore")
    with pytest.raises(ConfigError, match="horizon"):
        make_env(micro_table, "class_object", horizon=0)
    with pytest.raises(ConfigError, match="4096"):
        make_env(micro_table, "class_object", start_arch=4096)
    with pytest.raises(ConfigError, match="class_object, room_layout"):
        make_env(micro_table, "jigsaw")


# -- random states, vmap vs loop, jit vs no jit, auto-reset --------------------------------------
STATE_CONFIGS = {
    "micro": ("class_object", "improvement", "rank", 5),
    "macro": ("autoencoder", "delta", "minmax", 4),
}

# The environment is an argument (not a closure constant), so these compile once per static
# configuration and the tables are not baked into the programs.
V_RESET = jax.jit(jax.vmap(lambda env, k: env.reset(k), in_axes=(None, 0)))
V_STEP = jax.jit(jax.vmap(lambda env, s, a: env.step(s, a), in_axes=(None, 0, 0)))
V_AUTO = jax.jit(jax.vmap(lambda env, s, a: env.step_autoreset(s, a), in_axes=(None, 0, 0)))
RESET = jax.jit(lambda env, k: env.reset(k))
STEP = jax.jit(lambda env, s, a: env.step(s, a))
AUTO = jax.jit(lambda env, s, a: env.step_autoreset(s, a))


@pytest.fixture(scope="module", params=["micro", "macro"])
def batch_setup(request, test_tables, spaces):
    space = request.param
    task, mode, norm, horizon = STATE_CONFIGS[space]
    table = test_tables[space]
    env = make_env(table, task, horizon=horizon, reward_mode=mode, normalisation=norm, space=spaces[space])
    return space, env, table, task


def random_states(env, r, rng, n):
    """Mid-episode states built by walking the reference, as (EnvState batch, reference states)."""
    states, refs = [], []
    for i in range(n):
        start = int(rng.integers(env.space.num_archs))
        r.reset(start)
        history = [start]
        for _ in range(int(rng.integers(0, env.horizon))):
            mask = r.space.mask(r.arch)
            r.step(int(rng.choice(np.flatnonzero(mask))) if rng.uniform() < 0.8 else int(rng.integers(len(mask))))
            history.append(r.arch)
        refs.append((r.arch, r.t, set(r.visited), r.best_arch))
        states.append(
            EnvState(
                key=jax.random.PRNGKey(1000 + i),
                arch=jnp.int32(r.arch),
                t=jnp.int32(r.t),
                best_arch=jnp.int32(r.best_arch),
                history=jnp.asarray(history + [-1] * (env.horizon + 1 - len(history)), jnp.int32),
                distinct=jnp.int32(len(r.visited)),
            )
        )
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states), refs


def test_random_states_step_matches_reference_and_loop(batch_setup):
    space, env, table, task = batch_setup
    r = reference_for(env, table, task)
    rng = np.random.default_rng(42)
    batch, refs = random_states(env, r, rng, 24)
    actions = jnp.asarray(rng.integers(0, env.num_actions, 24), jnp.int32)
    v_state, v_ts = tree_np(V_STEP(env, batch, actions))
    for i, (arch, t, visited, best) in enumerate(refs):
        r.set_state(arch, t, visited, best)
        expected = r.step(int(actions[i]))
        assert_matches(at(v_ts, i), expected, f"state {i}")
        s_state, s_ts = tree_np(STEP(env, at(batch, i), actions[i]))
        jax.tree.map(np.testing.assert_array_equal, at(v_ts, i), s_ts)
        jax.tree.map(np.testing.assert_array_equal, at(v_state, i), s_state)
        assert int(s_state.t) == t + 1 and int(s_state.distinct) == len(r.visited)
        assert s_state.history[t + 1] == r.arch and (s_state.history[t + 2 :] == -1).all()


def test_vmap_reset_and_autoreset_equal_loop_and_no_jit(batch_setup):
    space, env, table, task = batch_setup
    keys = jax.random.split(jax.random.PRNGKey(5), 4)
    v_state, v_ts = tree_np(V_RESET(env, keys))
    for i in range(4):
        s = tree_np(RESET(env, keys[i]))
        jax.tree.map(np.testing.assert_array_equal, (at(v_state, i), at(v_ts, i)), s)
    if space == "micro":
        # jit equals no jit (one sample each, one space: op-by-op execution compiles every op)
        assert_tree_close(env.reset(keys[0]), RESET(env, keys[0]))
        state0, _ = RESET(env, keys[0])
        action = jnp.int32(int(np.flatnonzero(np.asarray(env.observe(state0).action_mask))[0]))
        assert_tree_close(env.step(state0, action), STEP(env, state0, action))
        assert_tree_close(env.step_autoreset(state0, action), AUTO(env, state0, action))
    # batched auto-reset over a whole episode and a bit, against the single-env loop
    state_b, _ = V_RESET(env, keys)
    singles = [RESET(env, k)[0] for k in keys]
    rng = np.random.default_rng(0)
    for _ in range(env.horizon + 2):
        actions = jnp.asarray(rng.integers(0, env.num_actions, 4), jnp.int32)
        state_b, ts_b = V_AUTO(env, state_b, actions)
        for i in range(4):
            singles[i], ts = AUTO(env, singles[i], actions[i])
            jax.tree.map(np.testing.assert_array_equal, tree_np(at(ts_b, i)), tree_np(ts))
            jax.tree.map(np.testing.assert_array_equal, tree_np(at(state_b, i)), tree_np(singles[i]))


def test_different_seeds_different_starts(batch_setup):
    space, env, table, task = batch_setup
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    archs = np.array([int(RESET(env, k)[0].arch) for k in keys])
    assert archs.min() >= 0 and archs.max() < env.space.num_archs
    assert len(np.unique(archs)) >= 60  # 64 uniform draws out of 3256 or 4096
    again = np.array([int(RESET(env, k)[1].info.arch) for k in keys[:8]])
    np.testing.assert_array_equal(again, archs[:8])  # same seed, same start


def test_autoreset_starts_a_fresh_episode(batch_setup):
    space, env, table, task = batch_setup
    r = reference_for(env, table, task)
    state, ts = RESET(env, jax.random.PRNGKey(11))
    r.reset(int(state.arch))
    rng = np.random.default_rng(1)
    episode_starts = [int(state.arch)]
    for n in range(3 * env.horizon):
        mask = r.space.mask(r.arch)
        action = int(rng.choice(np.flatnonzero(mask)))
        state, ts = AUTO(env, state, jnp.int32(action))
        expected = r.step(action)
        assert_matches(tree_np(ts), expected, f"step {n}")  # the true (final) timestep
        if (n + 1) % env.horizon == 0:
            assert int(ts.step_type) == StepType.LAST and bool(ts.truncated())
            assert float(ts.observation.features[2]) == 1.0
            assert int(ts.info.arch) == r.arch  # final observation, not the new episode's
            # the returned state is already a fresh episode
            assert int(state.t) == 0 and int(state.distinct) == 1
            assert int(state.best_arch) == int(state.arch)
            hist = np.asarray(state.history)
            assert hist[0] == int(state.arch) and (hist[1:] == -1).all()
            obs = env.observe(state)
            np.testing.assert_allclose(np.asarray(obs.features)[[0, 2]], [float(env.score[state.arch]), 0.0])
            assert_matches(
                tree_np(
                    TimeStep(
                        step_type=jnp.int32(StepType.FIRST),
                        reward=jnp.float32(0.0),
                        discount=jnp.float32(1.0),
                        observation=obs,
                        info=env._info(state),
                    )
                ),
                r.reset(int(state.arch)),
                "fresh episode",
            )
            episode_starts.append(int(state.arch))
        else:
            assert int(ts.step_type) == StepType.MID and int(state.t) == (n + 1) % env.horizon
    assert len(set(episode_starts)) == len(episode_starts)  # each episode draws a new start


def test_random_valid_action_is_uniform_over_the_mask(batch_setup):
    space, env, table, task = batch_setup
    state, _ = RESET(env, jax.random.PRNGKey(2))
    obs = env.observe(state)
    draws = np.asarray(
        jax.jit(jax.vmap(random_valid_action, in_axes=(0, None)))(
            jax.random.split(jax.random.PRNGKey(0), 2000), obs
        )
    )
    mask = np.asarray(obs.action_mask)
    assert mask[draws].all()
    counts = np.bincount(draws, minlength=env.num_actions)[mask]
    assert (counts > 0).all()  # every valid action can be drawn
    assert counts.max() < 3 * counts.min()  # and roughly uniformly
