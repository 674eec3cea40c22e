"""Search spaces: the neighbour table and action masks against a brute-force computation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.spaces import SearchSpace, make_space, neighbour_table

NUM_VALUES = {"micro": 4, "macro": 5}
NUM_ACTIONS = {"micro": 24, "macro": 30}


def csv_codes(raw_csv, space) -> list[tuple[int, ...]]:
    """Encodings of the CSV's names, parsed here (macro padded with 0 to six slots)."""
    out = []
    for row in raw_csv[space][1]:
        name = row[0]
        if space == "micro":
            digits = name[len("64-41414-") :].replace("_", "")
        else:
            digits = name.split("-")[1].ljust(6, "0")
        out.append(tuple(int(c) for c in digits))
    return out


@pytest.fixture(scope="module")
def spaces(tables):
    return {name: make_space(tables[name]) for name in ("micro", "macro")}


@pytest.fixture(scope="module")
def brute_force(raw_csv):
    """``{space: (codes in canonical order, next [N, A] with -1 for invalid)}`` by plain loops."""
    out = {}
    for space in ("micro", "macro"):
        codes = sorted(csv_codes(raw_csv, space))
        index = {c: i for i, c in enumerate(codes)}
        v_count = NUM_VALUES[space]
        nxt = np.full((len(codes), 6 * v_count), -1, np.int64)
        for i, code in enumerate(codes):
            for p in range(6):
                for v in range(v_count):
                    new = code[:p] + (v,) + code[p + 1 :]
                    if new != code and new in index:
                        nxt[i, p * v_count + v] = index[new]
        out[space] = (codes, nxt)
    return out


@pytest.fixture(scope="module")
def jitted():
    step = jax.jit(jax.vmap(SearchSpace.step, in_axes=(None, 0, 0)))
    mask = jax.jit(jax.vmap(SearchSpace.action_mask, in_axes=(None, 0)))
    return step, mask


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_shapes(spaces, space):
    s = spaces[space]
    assert s.name == space and s.num_values == NUM_VALUES[space]
    assert s.num_actions == NUM_ACTIONS[space] and s.length == 6
    assert s.num_archs == {"micro": 4096, "macro": 3256}[space]
    assert s.encodings.dtype == jnp.int32 and s.neighbours.dtype == jnp.int32
    assert s.neighbours.shape == (s.num_archs, s.num_actions)


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_neighbour_table_and_mask_equal_brute_force(spaces, brute_force, jitted, space):
    s = spaces[space]
    codes, expected = brute_force[space]
    np.testing.assert_array_equal(np.asarray(s.encodings), np.asarray(codes))
    np.testing.assert_array_equal(np.asarray(s.neighbours), expected)
    _, mask = jitted
    np.testing.assert_array_equal(np.asarray(mask(s, jnp.arange(s.num_archs))), expected >= 0)


def test_micro_every_arch_has_18_valid_actions(spaces, brute_force):
    counts = np.asarray(spaces["micro"].neighbours >= 0).sum(axis=1)
    assert (counts == 18).all()


def test_macro_valid_action_counts(spaces, brute_force):
    _, expected = brute_force["macro"]
    counts = np.asarray(spaces["macro"].neighbours >= 0).sum(axis=1)
    np.testing.assert_array_equal(counts, (expected >= 0).sum(axis=1))
    assert counts.min() >= 1  # no architecture is a dead end
    assert len(np.unique(counts)) > 1  # the macro space is irregular
    assert counts.sum() == (expected >= 0).sum()
    # the move relation is symmetric: b is a neighbour of a iff a is a neighbour of b
    nb = np.asarray(spaces["macro"].neighbours)
    pairs = {(i, int(j)) for i, row in enumerate(nb) for j in row if j >= 0}
    assert all((j, i) in pairs for i, j in pairs)


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_random_steps_change_exactly_the_action_position(spaces, brute_force, jitted, space):
    s = spaces[space]
    step, mask = jitted
    rng = np.random.default_rng({"micro": 0, "macro": 1}[space])
    archs = rng.integers(0, s.num_archs, 4000)
    actions = rng.integers(0, s.num_actions, 4000)
    nxt = np.asarray(step(s, jnp.asarray(archs, jnp.int32), jnp.asarray(actions, jnp.int32)))
    valid = np.asarray(mask(s, jnp.asarray(archs, jnp.int32)))[np.arange(4000), actions]
    enc = np.asarray(s.encodings)
    assert valid.any() and not valid.all()
    for arch, action, new, ok in zip(archs, actions, nxt, valid):
        p, v = divmod(int(action), s.num_values)
        assert s.action_of(p, v) == action
        if ok:
            diff = np.flatnonzero(enc[new] != enc[arch])
            assert diff.tolist() == [p] and enc[new][p] == v
        else:
            assert new == arch


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_out_of_range_actions_stay_in_place(spaces, jitted, space):
    s = spaces[space]
    step, _ = jitted
    archs = jnp.asarray([0, 5, s.num_archs - 1, 17], jnp.int32)
    actions = jnp.asarray([-1, s.num_actions, s.num_actions + 7, -s.num_actions], jnp.int32)
    np.testing.assert_array_equal(np.asarray(step(s, archs, actions)), np.asarray(archs))


def test_make_space_from_name_equals_from_table(spaces):
    for name in ("micro", "macro"):
        s = make_space(name)
        np.testing.assert_array_equal(np.asarray(s.neighbours), np.asarray(spaces[name].neighbours))
        np.testing.assert_array_equal(np.asarray(s.encodings), np.asarray(spaces[name].encodings))
    with pytest.raises(ValueError, match="nano"):
        make_space("nano")


def test_neighbour_table_on_a_toy_space():
    # Binary strings of length 3 with an even number of ones, V = 2: no single flip stays inside.
    enc = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]])
    assert (neighbour_table(enc, 2) == -1).all()
    # All of {0,1,2}^2, V = 3: every other value at every position is a neighbour.
    enc = np.array([[a, b] for a in range(3) for b in range(3)])
    nxt = neighbour_table(enc, 3)
    assert nxt.shape == (9, 6) and nxt.dtype == np.int32
    assert nxt[4].tolist() == [1, -1, 7, 3, -1, 5]  # (1,1): p0 -> 0,_,2 ; p1 -> 0,_,2
