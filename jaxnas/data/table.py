"""The benchmark table of one search space as an immutable pytree of device arrays."""

from __future__ import annotations

from typing import Optional

import chex
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxnas.data import names as arch_names
from jaxnas.errors import ConfigError


@struct.dataclass
class BenchmarkTable:
    """All architectures of one search space with their metrics.

    Rows are in the space's canonical order (see :mod:`jaxnas.data.names`), so row ``i`` is the
    same architecture whichever file the table was loaded from.

    encodings: int32 [N, L] architecture tokens.
    valid: float32 [T, N] validation metric per task (final epoch unless loaded with
        ``epoch="best"``); higher is better for every task.
    test: float32 [T, N] test metric per task, or None when the source has none.
    """

    encodings: chex.Array
    valid: chex.Array
    test: Optional[chex.Array]
    space: str = struct.field(pytree_node=False)
    tasks: tuple[str, ...] = struct.field(pytree_node=False)
    source: str = struct.field(pytree_node=False, default="")

    @property
    def num_archs(self) -> int:
        return int(self.encodings.shape[0])

    @property
    def has_test(self) -> bool:
        return self.test is not None

    @property
    def names(self) -> tuple[str, ...]:
        """Host-side architecture names, row order."""
        return arch_names.all_names(self.space)

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            raise ConfigError(
                f"unknown task {task!r} for the {self.space} table"
                f"{' from ' + self.source if self.source else ''}; tasks present: "
                f"{', '.join(self.tasks)}"
            )
        return self.tasks.index(task)

    def valid_of(self, task: str) -> chex.Array:
        return self.valid[self.task_index(task)]

    def test_of(self, task: str) -> Optional[chex.Array]:
        return None if self.test is None else self.test[self.task_index(task)]

    def index(self, name: str) -> int:
        try:
            return arch_names.name_to_index(self.space)[name]
        except KeyError:
            raise ConfigError(
                f"{name!r} is not an architecture of the {self.space} space"
            ) from None

    def name(self, index: int) -> str:
        return self.names[int(index)]

    def encoding(self, index: int) -> np.ndarray:
        return np.asarray(self.encodings[int(index)])

    def index_of_encoding(self, code) -> int:
        return self.index(arch_names.decode(self.space, code))

    def select_tasks(self, tasks) -> "BenchmarkTable":
        rows = [self.task_index(t) for t in tasks]
        return self.replace(
            valid=self.valid[jnp.asarray(rows)],
            test=None if self.test is None else self.test[jnp.asarray(rows)],
            tasks=tuple(tasks),
        )


def table_from_numpy(
    space: str,
    tasks,
    valid: np.ndarray,
    test: Optional[np.ndarray] = None,
    source: str = "",
) -> BenchmarkTable:
    """Builds a table from host arrays already in canonical row order."""
    tasks = tuple(tasks)
    encodings = arch_names.all_encodings(space)
    valid = np.asarray(valid, np.float32)
    chex.assert_shape(valid, (len(tasks), encodings.shape[0]))
    if test is not None:
        test = np.asarray(test, np.float32)
        chex.assert_shape(test, valid.shape)
    return BenchmarkTable(
        encodings=jnp.asarray(encodings, jnp.int32),
        valid=jnp.asarray(valid),
        test=None if test is None else jnp.asarray(test),
        space=space,
        tasks=tasks,
        source=str(source),
    )
