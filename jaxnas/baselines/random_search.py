"""Random search: uniform sampling of distinct architectures (without replacement)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from jax import lax

from jaxnas.baselines.common import BaselineResult, check_inputs, check_result


def run_random_search(
    key: chex.PRNGKey, neighbours: chex.Array, values: chex.Array, num_queries: int
) -> BaselineResult:
    """Queries the first ``num_queries`` architectures of a uniformly random permutation.

    ``neighbours`` is only used for its shape (the same signature as the other baselines).
    Every query is a fresh uniform draw among the not yet queried architectures, so
    ``best_so_far[k-1]`` is distributed as the maximum of k draws without replacement.
    """
    num_archs, _ = check_inputs(neighbours, values, num_queries)
    queried = jax.random.permutation(key, num_archs)[:num_queries].astype(jnp.int32)
    result = BaselineResult(
        best_so_far=lax.cummax(values[queried]).astype(jnp.float32),
        queried=queried,
        parents=jnp.full((num_queries,), -1, jnp.int32),
        num_queried=jnp.asarray(num_queries, jnp.int32),
        num_steps=jnp.asarray(num_queries, jnp.int32),
    )
    check_result(result, num_queries)
    return result
