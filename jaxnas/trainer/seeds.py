"""Many independent training runs in one program: everything vmapped over seeds.

A study's K seeds share every compiled function and run side by side on one device: the state
gets a leading seed axis, :func:`train_chunk_seeds` is ``vmap`` of the single-seed chunk, and
:func:`evaluate_seeds` evaluates all K parameter sets at once. Seed ``i`` follows the same
computation as a single-seed run with the same key; results agree with that run to float
rounding (XLA may order a batched matmul's sums differently from an unbatched one).

:func:`train_seeds` is the whole training of K seeds (init, iterations, greedy evaluation):
the parameters are drawn per seed as ``init_train_state`` draws them, everything else runs in
one vmapped, jitted program; :func:`run_seeds_phase` is :func:`jaxnas.trainer.phase.run_phase`
for K seeds (curves, checkpoints, interrupts). :func:`drive_phase` is the phase driver both it
and :func:`jaxnas.trainer.distributed.run_sharded_phase` use. :func:`mean_ci95` summarises a
number over seeds (mean and 95% t-interval).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import types
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxnas.agent.learner import init_learner
from jaxnas.env.nas_env import NASEnv
from jaxnas.errors import ConfigError
from jaxnas.trainer.agent import Agent
from jaxnas.trainer.checkpoint import Checkpointer
from jaxnas.trainer.evaluate import run_episodes, summarise
from jaxnas.trainer.loop import TrainState, init_train_state, reset_for_task, train_iteration
from jaxnas.trainer.phase import Interrupted, PhaseResult, chunk_plan


def seed_keys(seeds: Sequence[int]) -> chex.Array:
    """uint32 [K, 2]: ``jax.random.PRNGKey(seed)`` for each seed."""
    if len(seeds) < 1:
        raise ConfigError("need at least one seed")
    return jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])


def num_seeds(state) -> int:
    return int(jax.tree.leaves(state)[0].shape[0])


def take(tree, i: int):
    """Seed ``i``'s slice of a stacked tree."""
    return jax.tree.map(lambda x: x[i], tree)


def init_seeds_state(agent: Agent, env: NASEnv, keys: chex.Array) -> TrainState:
    """``init_train_state`` for every key of ``keys`` [K, 2], stacked on a leading seed axis.

    The parameters are drawn eagerly, key by key, exactly as ``init_train_state`` draws them
    (drawn inside a jit they can differ in the last bit, which is enough to flip a greedy action
    later); everything else is vmapped in one jitted call.
    """
    param_keys = [jax.random.split(k, 3)[0] for k in keys]
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *[agent.init_params(k) for k in param_keys])
    return _init_seeds_from_params(agent, env, params, keys)


@functools.partial(jax.jit, static_argnums=0)
def _init_seeds_from_params(agent: Agent, env: NASEnv, params, keys: chex.Array) -> TrainState:
    def one(p, key):
        _, actor_key, loop_key = jax.random.split(key, 3)  # the split of init_train_state
        return reset_for_task(agent, env, init_learner(p, agent.learner), loop_key, actor_key)

    return jax.vmap(one)(params, keys)


@functools.partial(jax.jit, static_argnums=0)
def reset_seeds_for_task(agent: Agent, env: NASEnv, learners, keys: chex.Array) -> TrainState:
    """``reset_for_task`` per seed: seed i keeps ``learners[i]`` and gets ``keys[i]``."""
    return jax.vmap(lambda l, k: reset_for_task(agent, env, l, k))(learners, keys)


def _scan_iterations(agent: Agent, env: NASEnv, state: TrainState, num_iterations: int):
    return jax.lax.scan(lambda s, _: train_iteration(agent, env, s), state, None, length=num_iterations)


@functools.partial(jax.jit, static_argnames=("agent", "num_iterations"), donate_argnames=("state",))
def train_chunk_seeds(agent: Agent, env: NASEnv, state: TrainState, num_iterations: int):
    """``train_chunk`` for every seed at once. Returns (state, ChunkMetrics [K, num_iterations])."""
    return jax.vmap(lambda s: _scan_iterations(agent, env, s, num_iterations))(state)


@functools.partial(jax.jit, static_argnames=("apply_fn", "num_episodes", "epsilon"))
def run_episodes_seeds(apply_fn, params, env: NASEnv, keys: chex.Array, num_episodes: int, epsilon: float = 0.0):
    """``run_episodes`` for stacked ``params`` [K, ...] with ``keys`` [K, 2] -> EpisodeOutcome
    with leaves [K, num_episodes]."""
    return jax.vmap(lambda p, k: run_episodes(apply_fn, p, env, k, num_episodes, epsilon))(params, keys)


def evaluate_seeds(apply_fn, params, env: NASEnv, keys: chex.Array, num_episodes: int, epsilon: float = 0.0) -> list[dict]:
    """``evaluate`` per seed (one compiled call for all of them) -> K summary dicts."""
    outcome = jax.device_get(run_episodes_seeds(apply_fn, params, env, keys, num_episodes, epsilon))
    return [summarise(take(outcome, i), env) for i in range(keys.shape[0])]


def train_seeds(agent: Agent, env: NASEnv, keys: chex.Array, eval_keys: chex.Array, num_iterations: int, num_episodes: int):
    """A whole training run per seed, all seeds at once: init from ``keys[i]`` (as
    :func:`init_seeds_state`), then ``num_iterations`` iterations and a greedy evaluation from
    ``eval_keys[i]`` in one compiled, vmapped program.

    Returns (final TrainState [K, ...], ChunkMetrics [K, num_iterations], EpisodeOutcome [K, E]).
    """
    state = init_seeds_state(agent, env, keys)
    return _train_and_evaluate_seeds(agent, env, state, eval_keys, num_iterations, num_episodes)


@functools.partial(
    jax.jit, static_argnames=("agent", "num_iterations", "num_episodes"), donate_argnames=("state",)
)
def _train_and_evaluate_seeds(agent, env, state, eval_keys, num_iterations: int, num_episodes: int):
    def one(state, eval_key):
        state, metrics = _scan_iterations(agent, env, state, num_iterations)
        outcome = run_episodes(agent.apply_fn, state.learner.params, env, eval_key, num_episodes)
        return state, metrics, outcome

    return jax.vmap(one)(state, eval_keys)


# -- phases -----------------------------------------------------------------------------------


@dataclasses.dataclass
class StackedPhase:
    """A phase of several members trained together (seeds, or devices of one agent).

    ``evaluations[k][i]`` is member i's evaluation at curve point k; ``curve_env_steps`` counts
    steps as ``env_steps_fn`` does (per seed for seeds, all devices together for devices).
    """

    state: Any
    curve_env_steps: list[int]
    evaluations: list[list[dict]]
    wall_clock_s: float
    env_steps: int

    @property
    def num_members(self) -> int:
        return len(self.evaluations[0])

    def member(self, i: int) -> PhaseResult:
        """Member i as a single-run PhaseResult; its ``state`` is the whole stacked state and its
        wall clock that of all members together."""
        evals = [e[i] for e in self.evaluations]
        return PhaseResult(
            state=self.state,
            curve_env_steps=list(self.curve_env_steps),
            curve_scores=[e["normalised_score"] for e in evals],
            evaluations=evals,
            wall_clock_s=self.wall_clock_s,
            env_steps=self.env_steps,
        )


def drive_phase(
    chunk_fn: Callable[[Any, int], Any],
    evaluate_fn: Callable[[Any], list[dict]],
    env_steps_fn: Callable[[Any], int],
    state,
    total_steps: int,
    *,
    steps_per_iteration: int,
    eval_every: int,
    name: str = "train",
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    checkpoint_every: int = 1,
) -> StackedPhase:
    """The loop of ``run_phase`` (same chunk plan, evaluation points, checkpoints, interrupts
    and resume) around any chunk function: ``chunk_fn(state, iterations) -> state``,
    ``evaluate_fn(state) -> [dict per member]``, ``env_steps_fn(state) -> int``."""
    plan_of = types.SimpleNamespace(steps_per_iteration=steps_per_iteration, eval_every=eval_every)
    chunk, chunks_per_eval, num_evals = chunk_plan(plan_of, total_steps)
    ckpt = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    meta = {"chunks_done": 0, "curve_env_steps": [], "evaluations": [], "wall_clock_s": 0.0}
    base_steps = env_steps_fn(state)

    def record(st):
        meta["evaluations"].append(evaluate_fn(st))
        meta["curve_env_steps"].append(env_steps_fn(st) - base_steps)

    if resume and ckpt is not None and ckpt.latest_step() is not None:
        state, meta = ckpt.restore(state)
        base_steps = meta["base_steps"]
    else:
        record(state)
    meta["base_steps"] = base_steps

    total_chunks = num_evals * chunks_per_eval
    steps_per_chunk = chunk * steps_per_iteration
    bar = tqdm(
        total=total_chunks * steps_per_chunk, initial=meta["chunks_done"] * steps_per_chunk,
        desc=name, unit="step", unit_scale=True, disable=not progress, dynamic_ncols=True,
        smoothing=0.1,
    )
    wall_before = meta["wall_clock_s"]
    start = time.perf_counter()
    try:
        while meta["chunks_done"] < total_chunks:
            state = chunk_fn(state, chunk)
            jax.block_until_ready(state)
            meta["chunks_done"] += 1
            bar.update(steps_per_chunk)
            at_eval = meta["chunks_done"] % chunks_per_eval == 0
            if at_eval:
                record(state)
                scores = [e["normalised_score"] for e in meta["evaluations"][-1]]
                bar.set_postfix(score=f"{np.mean(scores):.4f}")
            meta["wall_clock_s"] = wall_before + time.perf_counter() - start
            stop = should_stop() and meta["chunks_done"] < total_chunks
            evals = meta["chunks_done"] // chunks_per_eval
            periodic = at_eval and evals % checkpoint_every == 0
            if ckpt is not None and (stop or periodic or meta["chunks_done"] == total_chunks):
                ckpt.save(meta["chunks_done"], state, meta)
            if stop:
                raise Interrupted(ckpt.directory if ckpt is not None else Path("."))
    finally:
        bar.close()
        if ckpt is not None:
            ckpt.close()
    return StackedPhase(
        state=state,
        curve_env_steps=[int(s) for s in meta["curve_env_steps"]],
        evaluations=[list(e) for e in meta["evaluations"]],
        wall_clock_s=float(meta["wall_clock_s"]),
        env_steps=env_steps_fn(state) - base_steps,
    )


def run_seeds_phase(
    agent: Agent,
    env: NASEnv,
    state: TrainState,
    total_steps: int,
    eval_keys: chex.Array,
    *,
    name: str = "train",
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    checkpoint_every: int = 1,
) -> StackedPhase:
    """``run_phase`` for K seeds at once: ``state`` [K, ...] (e.g. from
    :func:`init_seeds_state`), ``eval_keys`` [K, 2]. ``total_steps`` and the curves count one
    seed's environment steps; ``result.member(i)`` is seed i's PhaseResult."""
    cfg = agent.config

    def chunk_fn(st, n):
        return train_chunk_seeds(agent, env, st, n)[0]

    def evaluate_fn(st):
        return evaluate_seeds(agent.apply_fn, st.learner.params, env, eval_keys, cfg.eval_episodes)

    def env_steps_fn(st):
        return int(np.asarray(st.env_steps)[0])

    return drive_phase(
        chunk_fn, evaluate_fn, env_steps_fn, state, total_steps,
        steps_per_iteration=cfg.steps_per_iteration, eval_every=cfg.eval_every, name=name,
        checkpoint_dir=checkpoint_dir, resume=resume, should_stop=should_stop, progress=progress,
        checkpoint_every=checkpoint_every,
    )


# -- statistics over seeds ----------------------------------------------------------------------

# Two-sided 95% quantiles t_{0.975, df} of Student's t, df = 1..30.
_T975 = (
    12.7062047, 4.30265273, 3.18244631, 2.77644511, 2.57058184, 2.44691185, 2.36462425,
    2.30600414, 2.26215716, 2.22813885, 2.20098516, 2.17881283, 2.16036866, 2.14478669,
    2.13144955, 2.11990530, 2.10981558, 2.10092204, 2.09302405, 2.08596345, 2.07961384,
    2.07387307, 2.06865761, 2.06389856, 2.05953855, 2.05552944, 2.05183052, 2.04840714,
    2.04522964, 2.04227246,
)


def t_quantile_975(df: int) -> float:
    """t_{0.975} with ``df`` degrees of freedom (table to 30, Cornish-Fisher expansion above,
    accurate to 1e-5 there)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def mean_ci95(values: Sequence[float]) -> dict:
    """{mean, ci95_low, ci95_high, values}: the mean over seeds and its two-sided 95% confidence
    interval from Student's t with K - 1 degrees of freedom (sample standard deviation). With
    one value (or non-finite values) the bounds are NaN."""
    x = np.asarray([float(v) for v in values], np.float64)
    mean = float(x.mean()) if x.size else float("nan")
    if x.size >= 2 and np.isfinite(x).all():
        half = t_quantile_975(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
        low, high = mean - half, mean + half
    else:
        low = high = float("nan")
    return {"mean": mean, "ci95_low": low, "ci95_high": high, "values": [float(v) for v in x]}
