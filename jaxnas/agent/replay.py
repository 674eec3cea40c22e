"""Prioritised replay of single transitions on top of flashbax's prioritised item buffer.

Ape-X actors compute each transition's initial priority themselves, so ``add`` takes the
priorities explicitly. This also sidesteps a flashbax 0.1.3 bug: upstream ``add`` gives new
items ``max_recorded_priority`` via ``jnp.full_like`` on an integer index array, which truncates
it to an integer (2.7 -> 2).

Priorities passed in are raw (|td| + eps, must be > 0); flashbax raises them to ``alpha``.
Items live in slots ``0 .. capacity - 1``; slot index == flashbax item index.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import chex
import flashbax as fbx
import jax
import jax.numpy as jnp
from flashbax.buffers import sum_tree

from jaxnas.errors import ConfigError

_FBX_DEVICE = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "rocm": "gpu", "tpu": "tpu"}


class ReplaySample(NamedTuple):
    transitions: Any  # pytree with leading axis [sample_batch_size]
    indices: chex.Array  # int32 [S], slots to pass back to update_priorities
    probabilities: chex.Array  # float32 [S], P(slot) at sampling time


@dataclasses.dataclass(frozen=True)
class Replay:
    """Pure, jittable functions over a flashbax prioritised buffer state.

    init(example) -> state; ``example`` is one unbatched transition fixing shapes and dtypes.
    add(state, transitions [B, ...], priorities [B]) -> state.
    sample(state, key) -> ReplaySample.
    update_priorities(state, indices [S], priorities [S]) -> state.
    can_sample(state) -> bool; size(state) -> int32 number of stored items.
    priorities(state) -> float32 [capacity], sum-tree leaves (raw priority ** alpha).
    buffer: the underlying flashbax buffer (its ``add`` has the bug described above).
    """

    capacity: int
    sample_batch_size: int
    alpha: float
    init: Callable
    add: Callable
    sample: Callable
    update_priorities: Callable
    can_sample: Callable
    size: Callable
    priorities: Callable
    buffer: Any


def priority_from_td(td: chex.Array, eps: float = 1e-6) -> chex.Array:
    """Raw priority |td| + eps; strictly positive, since a zero leaf marks an empty slot."""
    return jnp.abs(td) + eps


def make_replay(
    capacity: int, sample_batch_size: int, min_length: int | None = None, alpha: float = 0.6
) -> Replay:
    """Prioritised item buffer of ``capacity`` transitions, sampling ``sample_batch_size`` at a
    time once ``min_length`` (default ``sample_batch_size``) items are stored."""
    min_length = sample_batch_size if min_length is None else min_length
    if not 0 < sample_batch_size <= capacity or not 0 < min_length <= capacity:
        raise ConfigError(
            f"replay needs 0 < sample_batch_size ({sample_batch_size}) <= capacity ({capacity}) "
            f"and 0 < min_length ({min_length}) <= capacity"
        )
    buffer = fbx.make_prioritised_item_buffer(
        max_length=capacity,
        min_length=min_length,
        sample_batch_size=sample_batch_size,
        add_batches=True,
        priority_exponent=alpha,
        device=_FBX_DEVICE.get(jax.default_backend(), "cpu"),
    )

    def leaves(state) -> chex.Array:
        return sum_tree.get_batch(state.sum_tree_state, jnp.arange(capacity))

    def init(example):
        # flashbax leaves max_recorded_priority weakly typed; after one add it is strongly typed,
        # and that difference alone would make every jitted consumer compile twice.
        return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), buffer.init(example))

    def add(state, transitions, priorities):
        (batch,) = priorities.shape
        chex.assert_tree_shape_prefix(transitions, (batch,))
        # With one row and period 1, flashbax's item index is the time index it writes to.
        slots = (state.current_index + jnp.arange(batch)) % capacity
        state = buffer.add(state, transitions)
        return buffer.set_priorities(state, slots, priorities)

    def sample(state, key) -> ReplaySample:
        out = buffer.sample(state, key)
        indices, probs = out.indices.astype(jnp.int32), out.probabilities
        # The sum-tree descent compares against float sums; when the root drifts above its
        # children it can land on a zero leaf (an unwritten slot or padding). Such draws are
        # replaced by the batch's most probable item.
        bad = probs <= 0
        best = jnp.argmax(probs)
        indices = jnp.where(bad, indices[best], indices)
        probs = jnp.where(bad, probs[best], probs)
        # Item buffer layout: experience leaves are [1, capacity, ...].
        transitions = jax.tree.map(lambda x: x[0, indices], state.experience)
        return ReplaySample(transitions, indices, probs)

    def update_priorities(state, indices, priorities):
        chex.assert_equal_shape([indices, priorities])
        # A zero leaf is an unwritten slot (or sum-tree padding); a priority update must never
        # make one sampleable.
        current = sum_tree.get_batch(state.sum_tree_state, indices)
        return buffer.set_priorities(state, indices, jnp.where(current > 0, priorities, 0.0))

    def size(state) -> chex.Array:
        return jnp.where(state.is_full, capacity, state.current_index).astype(jnp.int32)

    return Replay(
        capacity=capacity,
        sample_batch_size=sample_batch_size,
        alpha=alpha,
        init=init,
        add=add,
        sample=sample,
        update_priorities=update_priorities,
        can_sample=buffer.can_sample,
        size=size,
        priorities=leaves,
        buffer=buffer,
    )
