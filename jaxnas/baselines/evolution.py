"""Regularised (aging) evolution, Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search", on a neighbour table.

1. The initial population is ``population_size`` (P) distinct uniformly random architectures,
   queried in a random order (if the budget Q <= P this is exactly random search).
2. Each cycle samples ``sample_size`` (S) members uniformly without replacement (a tournament);
   the best of them (first among ties) is the parent.
3. The child is a uniformly random VALID neighbour of the parent (one mutation = one valid
   action of the neighbour table).
4. The child is queried (one query if it is new; free, and not recorded, if it was queried
   before) and joins the population; the OLDEST member dies. Ages are birth cycles kept on
   device, so a re-queried child is young again like any other child.

Defaults P=50, S=10: a common setting for tabular NAS benchmarks with budgets of a few hundred
queries (NAS-Bench-201's and NASLib's regularised-evolution baselines use populations of
10..100 and tournaments of ~10); small enough that evolution starts after a sixth of a
300-query budget, large enough to keep diversity.

A cycle whose child was queried before costs no query, so the loop is capped at
``max_cycles`` (default ``50 * Q``) cycles; ``BaselineResult.num_queried`` tells if a run hit it.
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

DEFAULT_POPULATION_SIZE = 50
DEFAULT_SAMPLE_SIZE = 10


class _State(NamedTuple):
    key: chex.PRNGKey
    population: chex.Array  # int32 [P], architecture indices
    fitness: chex.Array  # float32 [P]
    birth: chex.Array  # int32 [P], cycle at which each member was born (smaller = older)
    log: QueryLog
    cycle: chex.Array  # int32


def default_max_cycles(num_queries: int) -> int:
    return 50 * num_queries


def run_evolution(
    key: chex.PRNGKey,
    neighbours: chex.Array,
    values: chex.Array,
    num_queries: int,
    population_size: int = DEFAULT_POPULATION_SIZE,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_cycles: Optional[int] = None,
) -> BaselineResult:
    """Regularised evolution (see the module docstring).

    ``parents[q]`` is the architecture that was mutated into ``queried[q]``, or -1 for the
    initial population.
    """
    num_archs, num_actions = check_inputs(neighbours, values, num_queries)
    population_size, sample_size = int(population_size), int(sample_size)
    if not 1 <= population_size <= num_archs:
        raise BaselineConfigError(
            f"population_size must be in 1..{num_archs} (the number of architectures), "
            f"got {population_size}"
        )
    if not 1 <= sample_size <= population_size:
        raise BaselineConfigError(
            f"sample_size must be in 1..population_size={population_size}, got {sample_size}"
        )
    if max_cycles is None:
        max_cycles = default_max_cycles(num_queries)
    if int(max_cycles) < 0:
        raise BaselineConfigError(f"max_cycles must be >= 0, got {max_cycles}")

    k_init, key = jax.random.split(key)
    population = jax.random.permutation(k_init, num_archs)[:population_size].astype(jnp.int32)

    def add_initial(log, arch):
        return record(log, values, arch, -1), None

    log, _ = lax.scan(add_initial, empty_log(num_archs, num_queries), population)
    state = _State(
        key=key,
        population=population,
        fitness=values[population],
        # Initial members are born at cycles -P..-1: the first one queried dies first.
        birth=jnp.arange(-population_size, 0, dtype=jnp.int32),
        log=log,
        cycle=jnp.zeros((), jnp.int32),
    )

    def cond(s: _State):
        return (s.log.count < num_queries) & (s.cycle < max_cycles)

    def body(s: _State) -> _State:
        key, k_sample, k_mutate = jax.random.split(s.key, 3)
        members = jax.random.choice(k_sample, population_size, (sample_size,), replace=False)
        parent = s.population[members[jnp.argmax(s.fitness[members])]]
        valid = neighbours[parent] >= 0
        action = jax.random.categorical(k_mutate, jnp.where(valid, 0.0, -jnp.inf))
        # The table promises a valid action everywhere; should one be missing, the child is
        # the parent itself (a free revisit) rather than the garbage index -1.
        child = jnp.where(valid.any(), neighbours[parent, action], parent)
        log = record(s.log, values, child, parent)
        oldest = jnp.argmin(s.birth)
        return _State(
            key=key,
            population=s.population.at[oldest].set(child),
            fitness=s.fitness.at[oldest].set(values[child]),
            birth=s.birth.at[oldest].set(s.cycle),
            log=log,
            cycle=s.cycle + 1,
        )

    final = lax.while_loop(cond, body, state)
    return finish(final.log, final.cycle)
