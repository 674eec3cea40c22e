"""Classic NAS search baselines on a neighbour table, jittable and vmapped over seeds.

Every algorithm is a pure function
``run_<algo>(key, neighbours, values, num_queries, **hyperparameters) -> BaselineResult``
over plain arrays (``neighbours`` int32 [N, A] with -1 for invalid actions, ``values`` float32
[N], higher is better) that counts distinct queries only. :func:`run_many` runs one of them for
many seeds in one compiled call.
"""

from __future__ import annotations

import inspect
import numbers
from functools import lru_cache
from typing import Callable, Union

import chex
import jax
import jax.numpy as jnp

from jaxnas.baselines.common import BaselineConfigError, BaselineResult, check_inputs
from jaxnas.baselines.evolution import (
    DEFAULT_POPULATION_SIZE,
    DEFAULT_SAMPLE_SIZE,
    default_max_cycles,
    run_evolution,
)
from jaxnas.baselines.local_search import default_max_steps, run_local_search
from jaxnas.baselines.random_search import run_random_search
from jaxnas.baselines.summary import summarise

#: Name -> function; the names are the ones the command lines accept.
ALGORITHMS: dict[str, Callable[..., BaselineResult]] = {
    "random_search": run_random_search,
    "local_search": run_local_search,
    "evolution": run_evolution,
}


def _resolve(algo: Union[str, Callable]) -> tuple[str, Callable]:
    if callable(algo):
        for name, fn in ALGORITHMS.items():
            if fn is algo:
                return name, fn
        return getattr(algo, "__name__", "custom"), algo
    if algo not in ALGORITHMS:
        raise BaselineConfigError(
            f"unknown baseline {algo!r}; choose from {', '.join(ALGORITHMS)}"
        )
    return algo, ALGORITHMS[algo]


def _hyperparameter_names(fn: Callable) -> tuple[str, ...]:
    params = list(inspect.signature(fn).parameters)
    return tuple(params[4:])  # after key, neighbours, values, num_queries


def resolved_hyperparameters(
    algo: Union[str, Callable], num_archs: int, num_actions: int, num_queries: int, **hp
) -> dict:
    """The hyperparameters a run will use, defaults filled in (for reports/JSON).

    Raises :class:`BaselineConfigError` for a name the algorithm does not take.
    """
    name, fn = _resolve(algo)
    allowed = _hyperparameter_names(fn)
    unknown = sorted(set(hp) - set(allowed))
    if unknown:
        raise BaselineConfigError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for {name}; it takes "
            f"{', '.join(allowed) if allowed else 'none'}"
        )
    out = {}
    for p in allowed:
        default = inspect.signature(fn).parameters[p].default
        out[p] = hp.get(p, default)
    if name == "local_search" and out.get("max_steps") is None:
        out["max_steps"] = default_max_steps(num_archs, num_actions, num_queries)
    if name == "evolution" and out.get("max_cycles") is None:
        out["max_cycles"] = default_max_cycles(num_queries)
    return out


@lru_cache(maxsize=64)
def _compiled(fn: Callable, num_queries: int, num_seeds: int, hp_items: tuple):
    hp = dict(hp_items)

    def one(key, neighbours, values):
        return fn(key, neighbours, values, num_queries, **hp)

    def many(key, neighbours, values):
        keys = jax.random.split(key, num_seeds)
        return jax.vmap(one, in_axes=(0, None, None))(keys, neighbours, values)

    return jax.jit(many)


def run_many(
    algo: Union[str, Callable],
    key: chex.PRNGKey,
    neighbours,
    values,
    num_queries: int,
    num_seeds: int,
    **hyperparameters,
) -> BaselineResult:
    """Runs ``algo`` once per key of ``jax.random.split(key, num_seeds)``, vmapped and jitted.

    Returns a :class:`BaselineResult` whose fields have a leading [num_seeds] axis; run i is
    exactly ``run_<algo>(jax.random.split(key, num_seeds)[i], ...)``. Compiled functions are
    cached per (algorithm, num_queries, num_seeds, hyperparameters) and reused for any
    neighbours/values arrays of the same shapes. Host arrays are converted to int32/float32.
    """
    name, fn = _resolve(algo)
    neighbours = jnp.asarray(neighbours, jnp.int32)
    values = jnp.asarray(values, jnp.float32)
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, numbers.Integral) or num_seeds < 1:
        raise BaselineConfigError(f"num_seeds must be an int >= 1, got {num_seeds!r}")
    num_archs, num_actions = check_inputs(neighbours, values, num_queries)
    resolved_hyperparameters(name, num_archs, num_actions, num_queries, **hyperparameters)
    compiled = _compiled(
        fn, int(num_queries), int(num_seeds), tuple(sorted(hyperparameters.items()))
    )
    return compiled(key, neighbours, values)


__all__ = [
    "ALGORITHMS",
    "BaselineConfigError",
    "BaselineResult",
    "DEFAULT_POPULATION_SIZE",
    "DEFAULT_SAMPLE_SIZE",
    "resolved_hyperparameters",
    "run_evolution",
    "run_local_search",
    "run_many",
    "run_random_search",
    "summarise",
]
