"""Data-parallel training over every local (or global) device with ``jax.shard_map``.

Each device runs its own actors and its own replay shard, exactly as one single-device agent
does; only the learner's gradients (and loss) are averaged across devices (``lax.pmean`` inside
:func:`jaxnas.agent.learner.learner_update`). All devices start from the same parameters and
optimiser state and apply the same averaged update, so the parameters stay identical on every
device without ever being broadcast again.

Sizes are per device: ``config`` describes one device, so D devices take D times the environment
steps and learner samples per iteration at the same replay ratio, with D replay shards of
``config.replay_capacity`` each. To keep the global sizes of a one-device run, divide
``num_envs`` and ``replay_capacity`` by D yourself.

The same code path serves 1..D devices. Device 0 is the single-device agent with the same key:
its state is :func:`jaxnas.trainer.loop.init_train_state` of that key, and device ``d > 0``
folds ``d`` into the actor and loop keys. With one device, :func:`train_chunk_sharded` therefore
reproduces :func:`jaxnas.trainer.loop.train_chunk` bit for bit.

Several processes (``jax.distributed.initialize``) work the same way: build the mesh over
``jax.devices()`` (all processes' devices); each process initialises and holds only the state
of its own devices. See ``docs/multihost.md``.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxnas.agent.learner import init_learner
from jaxnas.env.nas_env import NASEnv
from jaxnas.errors import ConfigError
from jaxnas.trainer.agent import Agent
from jaxnas.trainer.evaluate import evaluate
from jaxnas.trainer.loop import TrainState, reset_for_task, train_iteration
from jaxnas.trainer.phase import PhaseResult

AXIS = "devices"

# Jitted because the eager ``reset_for_task`` re-traces (and recompiles) its warm-up scan on
# every call.
_reset_jit = jax.jit(reset_for_task, static_argnums=0)


def make_mesh(num_devices: Optional[int] = None, devices: Optional[Sequence] = None) -> Mesh:
    """A one-axis mesh (axis ``"devices"``) over the first ``num_devices`` of ``devices``
    (default: ``jax.devices()``, which spans every process after ``jax.distributed.initialize``)."""
    devices = list(jax.devices() if devices is None else devices)
    num_devices = len(devices) if num_devices is None else int(num_devices)
    if num_devices < 1:
        raise ConfigError(f"the number of devices must be at least 1, got {num_devices}")
    if num_devices > len(devices):
        raise ConfigError(
            f"asked for {num_devices} devices but JAX sees {len(devices)} "
            f"({devices[0].platform}); use --devices {len(devices)} or fewer, or on a CPU start "
            f"Python with XLA_FLAGS=--xla_force_host_platform_device_count={num_devices}"
        )
    return Mesh(np.asarray(devices[:num_devices]), (AXIS,))


def _as_mesh(mesh_or_count) -> Mesh:
    return mesh_or_count if isinstance(mesh_or_count, Mesh) else make_mesh(mesh_or_count)


def _local_positions(mesh: Mesh) -> list[int]:
    """Positions along the mesh axis of the devices this process owns."""
    me = jax.process_index()
    return [i for i, d in enumerate(mesh.devices.flat) if d.process_index == me]


def from_process_local(tree, mesh: Mesh, spec: P):
    """Global arrays from this process's part (leading axis = its devices for ``P(AXIS)``, the
    whole value for ``P()``); works in one process and across several."""
    sharding = NamedSharding(mesh, spec)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def replicate(tree, mesh: Mesh):
    """``tree`` (e.g. the environment) as arrays replicated on every device of ``mesh``."""
    return from_process_local(tree, mesh, P())


def device_keys(loop_key: chex.PRNGKey, actor_key: chex.PRNGKey, index: int):
    """(loop key, actor key) of device ``index``: device 0 keeps the single-device keys, device
    d > 0 folds d into them."""
    if index == 0:
        return loop_key, actor_key
    return jax.random.fold_in(loop_key, index), jax.random.fold_in(actor_key, index)


def init_sharded_state(agent: Agent, env: NASEnv, key: chex.PRNGKey, mesh) -> TrainState:
    """A fresh agent on every device of ``mesh`` (a Mesh or a device count): parameters
    initialised once and identical everywhere, a replay shard and actors per device.

    Leaves get a leading device axis, sharded over the mesh. Device 0's slice equals
    ``init_train_state(agent, env, key)``.
    """
    mesh = _as_mesh(mesh)
    param_key, actor_key, loop_key = jax.random.split(key, 3)  # the split of init_train_state
    # Drawn eagerly, exactly as init_train_state draws them (under jit the initialisers' draws
    # can differ in the last bit).
    learner = init_learner(agent.init_params(param_key), agent.learner)
    return _per_device_states(agent, env, learner, loop_key, actor_key, mesh)


def shard_for_task(agent: Agent, env: NASEnv, learner, key: chex.PRNGKey, mesh) -> TrainState:
    """The sharded counterpart of :func:`reset_for_task`: ``learner`` (unsharded, e.g. one
    device's replica) on every device, with a new replay shard and new actors per device.
    Device 0's slice equals ``reset_for_task(agent, env, learner, key)``."""
    loop_key, actor_key = jax.random.split(key)  # the split of reset_for_task
    return _per_device_states(agent, env, learner, loop_key, actor_key, _as_mesh(mesh))


def _per_device_states(agent, env, learner, loop_key, actor_key, mesh: Mesh) -> TrainState:
    states = []
    for i in _local_positions(mesh):
        # Jitted reset_for_task gives the eager result bit for bit (it draws no parameters);
        # the tests check device 0 against init_train_state.
        states.append(_reset_jit(agent, env, learner, *device_keys(loop_key, actor_key, i)))
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *states)
    return from_process_local(stacked, mesh, P(AXIS))


@functools.partial(
    jax.jit, static_argnames=("agent", "num_iterations", "mesh"), donate_argnames=("state",)
)
def train_chunk_sharded(agent: Agent, env: NASEnv, state: TrainState, num_iterations: int, mesh: Mesh):
    """``num_iterations`` data-parallel training iterations on every device of ``mesh`` in one
    compiled call. ``state`` from :func:`init_sharded_state`; returns (state, ChunkMetrics with
    leaves [D, num_iterations])."""

    def per_device(env, state):
        state = jax.tree.map(lambda x: x[0], state)
        state, metrics = jax.lax.scan(
            lambda s, _: train_iteration(agent, env, s, axis_name=AXIS), state, None, length=num_iterations
        )
        return jax.tree.map(lambda x: x[None], (state, metrics))

    # check_vma=False: flashbax's sum-tree loops mix device-varying and replicated values in a
    # way the varying-axes checker rejects, although the program is correct.
    return jax.shard_map(
        per_device, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(AXIS), P(AXIS)), check_vma=False,
    )(env, state)


def replica(tree, index: int = 0):
    """Device ``index``'s slice of a sharded tree as host arrays (from this process's shards,
    so ``index`` must be one of its devices; the parameters are the same on all of them)."""

    def one(x):
        for shard in x.addressable_shards:
            start = shard.index[0].start or 0
            if start <= index < start + shard.data.shape[0]:
                return np.asarray(shard.data[index - start])
        raise ValueError(f"device {index} is not one of this process's devices")

    return jax.tree.map(one, tree)


def local_replica_index(tree) -> int:
    """The mesh position of this process's first device slice in ``tree``."""
    shard = jax.tree.leaves(tree)[0].addressable_shards[0]
    return shard.index[0].start or 0


def replica_params(state: TrainState):
    """The (identical) parameters, from this process's first device."""
    return replica(state.learner.params, local_replica_index(state.learner.params))


def params_spread(state: TrainState) -> float:
    """max |params_d - params_0| over this process's devices and every leaf; 0.0 when the
    replicas are in sync."""
    leaves = [np.stack([np.asarray(s.data) for s in x.addressable_shards]) for x in jax.tree.leaves(state.learner.params)]
    return float(max(np.abs(x - x[:1]).max() for x in leaves))


def total_env_steps(state: TrainState) -> int:
    """Environment steps of all devices together (each device counts its own)."""
    return int(np.asarray(jax.device_get(jnp.sum(state.env_steps))))


def run_sharded_phase(
    agent: Agent,
    env: NASEnv,
    state: TrainState,
    total_steps: int,
    eval_key: chex.PRNGKey,
    mesh: Mesh,
    *,
    name: str = "train",
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    checkpoint_every: int = 1,
) -> PhaseResult:
    """:func:`jaxnas.trainer.phase.run_phase` on ``mesh``: ``total_steps`` counts the steps of
    all devices together, evaluations use the (shared) parameters, and ``result.state`` is the
    sharded state."""
    from jaxnas.trainer.seeds import drive_phase

    num_devices = mesh.size
    env_global = replicate(env, mesh)

    def chunk_fn(st, n):
        return train_chunk_sharded(agent, env_global, st, n, mesh)[0]

    def evaluate_fn(st):
        return [evaluate(agent.apply_fn, replica_params(st), env, eval_key, agent.config.eval_episodes)]

    run = drive_phase(
        chunk_fn, evaluate_fn, total_env_steps, state, total_steps,
        steps_per_iteration=agent.config.steps_per_iteration * num_devices,
        eval_every=agent.config.eval_every, name=name, checkpoint_dir=checkpoint_dir, resume=resume,
        should_stop=should_stop, progress=progress, checkpoint_every=checkpoint_every,
    )
    return run.member(0)

