"""Shared pieces of the search baselines: the result type, input checks and query bookkeeping.

Every baseline counts *distinct* architectures: querying an architecture for the first time
costs one query and is recorded; looking at an already queried one again is free (its value is
known) and is not recorded. The bookkeeping below (:class:`QueryLog`) is the only place that
writes the per-query arrays, so every algorithm reports the same thing.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import chex
import jax.numpy as jnp

from jaxnas.errors import ConfigError


class BaselineConfigError(ConfigError, ValueError):
    """A baseline was asked for something impossible (e.g. more distinct queries than archs).

    Subclasses both :class:`jaxnas.errors.ConfigError` (command lines print it and exit 2) and
    :class:`ValueError` (the natural exception for a bad argument in library code).
    """


class BaselineResult(NamedTuple):
    """Outcome of one search run with a budget of Q distinct queries.

    best_so_far: float32 [Q]; entry q-1 is the best value among the first q distinct
        architectures queried.
    queried: int32 [Q]; the distinct architecture indices in query order.
    parents: int32 [Q]; the architecture from which ``queried[q]`` was reached by one edge of
        the neighbour table (local search: the current architecture; evolution: the parent that
        was mutated), or -1 when it was drawn at random (random search, a (re)start, the initial
        population).
    num_queried: int32 scalar; Q unless the iteration cap stopped the run early. Entries from
        ``num_queried`` on are padding: ``queried``/``parents`` are -1 and ``best_so_far``
        repeats the last best value.
    num_steps: int32 scalar; loop iterations used (diagnostics; compare with the cap).
    """

    best_so_far: chex.Array
    queried: chex.Array
    parents: chex.Array
    num_queried: chex.Array
    num_steps: chex.Array


def check_inputs(neighbours, values, num_queries: int) -> tuple[int, int]:
    """Shape/dtype checks shared by all baselines; returns (N, A).

    Runs in Python on static shapes, so it also works while tracing under ``jit``/``vmap``.
    """
    chex.assert_rank(neighbours, 2)
    chex.assert_rank(values, 1)
    chex.assert_type(neighbours, jnp.int32)
    chex.assert_type(values, jnp.float32)
    num_archs, num_actions = int(neighbours.shape[0]), int(neighbours.shape[1])
    chex.assert_shape(values, (num_archs,))
    if isinstance(num_queries, bool) or not isinstance(num_queries, numbers.Integral):
        raise BaselineConfigError(
            f"num_queries must be an integer (a static size), got {num_queries!r}"
        )
    num_queries = int(num_queries)
    if num_queries < 1:
        raise BaselineConfigError(f"num_queries must be at least 1, got {num_queries}")
    if num_queries > num_archs:
        raise BaselineConfigError(
            f"num_queries={num_queries} distinct queries asked for, but the space has only "
            f"{num_archs} architectures; use at most {num_archs}"
        )
    if num_actions < 1:
        raise BaselineConfigError("the neighbour table has no actions (shape [N, 0])")
    return num_archs, num_actions


class QueryLog(NamedTuple):
    """Per-run record of distinct queries (carried through ``lax.while_loop``)."""

    visited: chex.Array  # bool [N]
    queried: chex.Array  # int32 [Q]
    parents: chex.Array  # int32 [Q]
    best_so_far: chex.Array  # float32 [Q]
    count: chex.Array  # int32, distinct queries so far
    best: chex.Array  # float32, best value so far


def empty_log(num_archs: int, num_queries: int) -> QueryLog:
    return QueryLog(
        visited=jnp.zeros((num_archs,), bool),
        queried=jnp.full((num_queries,), -1, jnp.int32),
        parents=jnp.full((num_queries,), -1, jnp.int32),
        best_so_far=jnp.full((num_queries,), -jnp.inf, jnp.float32),
        count=jnp.zeros((), jnp.int32),
        best=jnp.full((), -jnp.inf, jnp.float32),
    )


def record(log: QueryLog, values, arch, parent, want=True) -> QueryLog:
    """Queries ``arch`` if ``want`` and it is new and budget is left; otherwise a no-op.

    ``arch`` must be a valid index even when ``want`` is False (callers clamp -1 to 0).
    """
    num_queries = log.queried.shape[0]
    arch = jnp.asarray(arch, jnp.int32)
    new = jnp.asarray(want) & ~log.visited[arch] & (log.count < num_queries)
    # An out-of-range index with mode="drop" makes the scatter a no-op without a branch.
    slot = jnp.where(new, log.count, num_queries)
    best = jnp.where(new, jnp.maximum(log.best, values[arch]), log.best)
    return QueryLog(
        visited=log.visited.at[arch].set(log.visited[arch] | new),
        queried=log.queried.at[slot].set(arch, mode="drop"),
        parents=log.parents.at[slot].set(jnp.asarray(parent, jnp.int32), mode="drop"),
        best_so_far=log.best_so_far.at[slot].set(best, mode="drop"),
        count=log.count + new.astype(jnp.int32),
        best=best,
    )


def finish(log: QueryLog, num_steps) -> BaselineResult:
    """Turns the log into a result, padding the tail if the iteration cap stopped the run."""
    num_queries = log.queried.shape[0]
    done = jnp.arange(num_queries) < log.count
    result = BaselineResult(
        best_so_far=jnp.where(done, log.best_so_far, log.best).astype(jnp.float32),
        queried=jnp.where(done, log.queried, -1).astype(jnp.int32),
        parents=jnp.where(done, log.parents, -1).astype(jnp.int32),
        num_queried=log.count.astype(jnp.int32),
        num_steps=jnp.asarray(num_steps, jnp.int32),
    )
    check_result(result, num_queries)
    return result


def check_result(result: BaselineResult, num_queries: int) -> None:
    chex.assert_shape([result.best_so_far, result.queried, result.parents], (num_queries,))
    chex.assert_type(result.best_so_far, jnp.float32)
    chex.assert_type([result.queried, result.parents, result.num_queried], jnp.int32)
    chex.assert_rank([result.num_queried, result.num_steps], 0)
