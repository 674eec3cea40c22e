"""Search spaces: architectures, actions and the neighbour table.

An action ``a = p * V + v`` sets position ``p`` of the encoding to value ``v`` (V values per
position): micro has 6 edges x 4 ops = 24 actions, macro 6 slots x {empty, 1, 2, 3, 4} = 30. An
action is valid when the resulting encoding is an architecture of the space and differs from
the current one; ``neighbours[arch, a]`` is that architecture's index, or -1.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxnas.data import names as arch_names
from jaxnas.data.table import BenchmarkTable


@struct.dataclass
class SearchSpace:
    encodings: chex.Array  # int32 [N, L]
    neighbours: chex.Array  # int32 [N, A], -1 where the action is invalid
    name: str = struct.field(pytree_node=False)
    num_values: int = struct.field(pytree_node=False)

    @property
    def num_archs(self) -> int:
        return int(self.encodings.shape[0])

    @property
    def length(self) -> int:
        return int(self.encodings.shape[1])

    @property
    def num_actions(self) -> int:
        return int(self.neighbours.shape[1])

    def action_mask(self, arch: chex.Array) -> chex.Array:
        return self.neighbours[arch] >= 0

    def step(self, arch: chex.Array, action: chex.Array) -> chex.Array:
        """The architecture reached by ``action``; ``arch`` itself when the action is invalid."""
        # JAX clamps (and wraps negative) gather indices, so an out-of-range action would silently
        # act like a real one; treat it as invalid instead.
        in_range = (action >= 0) & (action < self.num_actions)
        nxt = self.neighbours[arch, jnp.clip(action, 0, self.num_actions - 1)]
        return jnp.where(in_range & (nxt >= 0), nxt, arch)

    def action_of(self, position: int, value: int) -> int:
        return position * self.num_values + value


def neighbour_table(encodings: np.ndarray, num_values: int) -> np.ndarray:
    """``next[i, p * V + v]`` for every architecture, built with array operations.

    Encodings are read as base-V numbers; a dense lookup from number to row index (-1 outside the
    space) turns "set position p to v" into one gather.
    """
    encodings = np.asarray(encodings, np.int64)
    n, length = encodings.shape
    weights = num_values ** np.arange(length - 1, -1, -1, dtype=np.int64)  # [L]
    keys = encodings @ weights  # [N]
    lookup = np.full(num_values**length, -1, np.int64)
    lookup[keys] = np.arange(n)
    values = np.arange(num_values, dtype=np.int64)
    # new key when position p is set to v: key - code[p] * w[p] + v * w[p]
    delta = (values[None, None, :] - encodings[:, :, None]) * weights[None, :, None]  # [N, L, V]
    new_keys = keys[:, None, None] + delta
    nxt = lookup[new_keys]
    nxt[delta == 0] = -1  # unchanged architecture
    return nxt.reshape(n, length * num_values).astype(np.int32)


def make_space(table_or_space) -> SearchSpace:
    """The search space of a :class:`BenchmarkTable` (or a space name, ``"micro"``/``"macro"``)."""
    name = table_or_space.space if isinstance(table_or_space, BenchmarkTable) else table_or_space
    if name not in arch_names.SPACES:
        raise ValueError(f"unknown search space {name!r}; expected one of {arch_names.SPACES}")
    encodings = arch_names.all_encodings(name)
    num_values = arch_names.NUM_VALUES[name]
    return SearchSpace(
        encodings=jnp.asarray(encodings, jnp.int32),
        neighbours=jnp.asarray(neighbour_table(encodings, num_values)),
        name=name,
        num_values=num_values,
    )
