"""Local search: first-improvement hill climbing with random restarts.

The variant, precisely:

1. Start at a uniformly random architecture (it costs one query).
2. Go through the actions of the current architecture in a fresh uniformly random order,
   skipping invalid ones (-1 in the neighbour table). Each neighbour not queried before is
   queried (one query); one queried before is looked at for free (its value is known).
3. Move to the FIRST neighbour in that order whose value is strictly greater than the current
   one (first improvement), and continue with step 2 from there. Strictness means plateaus of
   equal values are never walked along, so every climb ends.
4. When every neighbour has been looked at and none is better (a local optimum; all its
   neighbours are then queried), restart from an architecture drawn uniformly among the ones
   not queried yet, and continue with step 2.

Restart points are read from one random permutation of all architectures drawn at the start,
skipping architectures already queried. Because the climb never looks at the unread tail of
that permutation, the next unqueried entry is uniform among the unqueried architectures, so
this is the same as a fresh uniform draw while costing O(1) per loop iteration.

The loop does one unit of work per iteration (look at one action, or one restart candidate),
so it stops after at most ``max_steps`` iterations; the default, ``4 * (A + 1) * Q + N``, is
far above what a run needs (each query costs at most A looks plus one move in practice, and
each restart candidate is skipped at most once).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
from jax import lax

from jaxnas.baselines.common import (
    BaselineConfigError,
    BaselineResult,
    QueryLog,
    check_inputs,
    empty_log,
    finish,
    record,
)


class _State(NamedTuple):
    key: chex.PRNGKey
    cur: chex.Array  # int32, architecture the climb stands on
    cur_val: chex.Array  # float32
    order: chex.Array  # int32 [A], random order of the actions of `cur`
    ptr: chex.Array  # int32, next position in `order`; A when all actions were looked at
    perm: chex.Array  # int32 [N], source of restart points
    restart_ptr: chex.Array  # int32, next candidate in `perm`
    log: QueryLog
    step: chex.Array  # int32


def default_max_steps(num_archs: int, num_actions: int, num_queries: int) -> int:
    return 4 * (num_actions + 1) * num_queries + num_archs


def run_local_search(
    key: chex.PRNGKey,
    neighbours: chex.Array,
    values: chex.Array,
    num_queries: int,
    max_steps: Optional[int] = None,
) -> BaselineResult:
    """First-improvement hill climbing with uniform random restarts (see the module docstring).

    ``parents[q]`` is the current architecture from which ``queried[q]`` was reached, or -1 for
    the start and the restarts.
    """
    num_archs, num_actions = check_inputs(neighbours, values, num_queries)
    if max_steps is None:
        max_steps = default_max_steps(num_archs, num_actions, num_queries)
    if int(max_steps) < 1:
        raise BaselineConfigError(f"max_steps must be at least 1, got {max_steps}")

    k_perm, k_order, key = jax.random.split(key, 3)
    perm = jax.random.permutation(k_perm, num_archs).astype(jnp.int32)
    start = perm[0]
    log = record(empty_log(num_archs, num_queries), values, start, -1)
    state = _State(
        key=key,
        cur=start,
        cur_val=values[start],
        order=jax.random.permutation(k_order, num_actions).astype(jnp.int32),
        ptr=jnp.zeros((), jnp.int32),
        perm=perm,
        restart_ptr=jnp.ones((), jnp.int32),
        log=log,
        step=jnp.zeros((), jnp.int32),
    )

    def cond(s: _State):
        return (s.log.count < num_queries) & (s.step < max_steps)

    def body(s: _State) -> _State:
        key, k_order = jax.random.split(s.key)
        exhausted = s.ptr >= num_actions

        # Look at the next action of the current architecture ...
        action = s.order[jnp.minimum(s.ptr, num_actions - 1)]
        nb = neighbours[s.cur, action]
        nb_valid = ~exhausted & (nb >= 0)
        nb_safe = jnp.maximum(nb, 0)
        improves = nb_valid & (values[nb_safe] > s.cur_val)

        # ... or, at a local optimum, try the next restart candidate.
        cand = s.perm[jnp.minimum(s.restart_ptr, num_archs - 1)]
        restart = exhausted & ~s.log.visited[cand]

        target = jnp.where(exhausted, cand, nb_safe)
        parent = jnp.where(exhausted, -1, s.cur)
        log = record(s.log, values, target, parent, want=nb_valid | restart)

        move = improves | restart
        cur = jnp.where(move, target, s.cur)
        new_order = jax.random.permutation(k_order, num_actions).astype(jnp.int32)
        return _State(
            key=key,
            cur=cur,
            cur_val=values[cur],
            order=jnp.where(move, new_order, s.order),
            ptr=jnp.where(move, 0, jnp.where(exhausted, s.ptr, s.ptr + 1)).astype(jnp.int32),
            perm=s.perm,
            # A candidate is consumed whether it is taken or skipped (already queried).
            restart_ptr=s.restart_ptr + exhausted.astype(jnp.int32),
            log=log,
            step=s.step + 1,
        )

    final = lax.while_loop(cond, body, state)
    return finish(final.log, final.step)
