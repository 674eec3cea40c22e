"""The same Ape-X agent driven the conventional way, for comparison with the on-device loop.

A Python loop steps a NumPy version of the environment (same tables, neighbour table, reward
and observation as ``jaxnas.env.NASEnv``) one vectorised step at a time, calls jitted functions
for acting (Q-network + epsilon-greedy), actor-side priorities (TD errors) and learner updates,
and keeps the replay on the host: NumPy storage plus a sum tree for prioritised sampling, as a
typical DQN / Ape-X implementation does. Per iteration it does exactly the work of one
``jaxnas.trainer.loop.train_iteration``: ``act_steps`` steps of ``num_envs`` environments,
``act_steps * num_envs`` n-step transitions with their priorities added to replay, and
``updates_per_iteration`` learner updates of ``batch_size`` samples with priority updates.
"""

from __future__ import annotations

import functools
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.agent.epsilon import epsilon_greedy
from jaxnas.agent.learner import Transition, init_learner, learner_update, td_errors
from jaxnas.env.nas_env import NASEnv
from jaxnas.env.types import Observation
from jaxnas.trainer.agent import Agent


class NumpyNASEnv:
    """``num_envs`` copies of the NAS environment in NumPy, with automatic reset at the horizon."""

    def __init__(self, env: NASEnv, num_envs: int, seed: int = 0):
        self.encodings = np.asarray(env.space.encodings)
        self.neighbours = np.asarray(env.space.neighbours)
        self.score = np.asarray(env.score)
        self.horizon = env.horizon
        self.reward_mode = env.reward_mode
        self.start_arch = env.start_arch
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        unknown = set(Observation._fields) - {"tokens", "action_mask", "features", "visited"}
        if unknown:
            raise NotImplementedError(f"NumpyNASEnv does not know observation fields {sorted(unknown)}")
        n = num_envs
        self.arch = np.zeros(n, np.int64)
        self.t = np.zeros(n, np.int64)
        self.best = np.zeros(n, np.int64)
        self.history = np.full((n, self.horizon + 1), -1, np.int64)
        self.distinct = np.ones(n, np.int64)
        self._reset(np.ones(n, bool))

    def _reset(self, which: np.ndarray) -> None:
        k = int(which.sum())
        if k == 0:
            return
        if self.start_arch >= 0:
            arch = np.full(k, self.start_arch)
        else:
            arch = self.rng.integers(0, self.encodings.shape[0], k)
        self.arch[which] = arch
        self.t[which] = 0
        self.best[which] = arch
        self.history[which] = -1
        self.history[which, 0] = arch
        self.distinct[which] = 1

    def observe(self) -> Observation:
        nb = self.neighbours[self.arch]  # [N, A]
        fields = {
            "tokens": self.encodings[self.arch].astype(np.int32),
            "action_mask": nb >= 0,
            "features": np.stack(
                [self.score[self.arch], self.score[self.best], self.t.astype(np.float32) * np.float32(1.0 / self.horizon)], axis=1
            ).astype(np.float32),
        }
        if "visited" in Observation._fields:
            fields["visited"] = (nb[:, :, None] == self.history[:, None, :]).any(axis=2) & (nb >= 0)
        return Observation(**fields)

    def step(self, action: np.ndarray):
        """-> (reward [N], last [N], the true next observation). Envs that ended are reset."""
        num_actions = self.neighbours.shape[1]
        in_range = (action >= 0) & (action < num_actions)
        nxt = self.neighbours[self.arch, np.clip(action, 0, num_actions - 1)]
        new_arch = np.where(in_range & (nxt >= 0), nxt, self.arch)
        old_score = self.score[self.arch]
        best_before = self.score[self.best]
        new_score = self.score[new_arch]
        self.t += 1
        is_new = ~(self.history == new_arch[:, None]).any(axis=1)
        self.best = np.where(new_score > best_before, new_arch, self.best)
        self.history[np.arange(self.num_envs), np.minimum(self.t, self.horizon)] = new_arch
        self.distinct += is_new
        self.arch = new_arch
        if self.reward_mode == "value":
            reward = new_score
        elif self.reward_mode == "improvement":
            reward = np.maximum(new_score - best_before, 0.0)
        else:
            reward = new_score - old_score
        last = self.t >= self.horizon
        next_obs = self.observe()
        self._reset(last)
        return reward.astype(np.float32), last, next_obs


class SumTree:
    """Binary sum tree over ``capacity`` leaves, updated and sampled with vectorised NumPy, one
    tree level at a time."""

    def __init__(self, capacity: int):
        self.size = 1
        while self.size < capacity:
            self.size *= 2
        self.tree = np.zeros(2 * self.size, np.float64)
        self.depth = int(np.log2(self.size))

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def set(self, index: np.ndarray, value: np.ndarray) -> None:
        node = np.asarray(index) + self.size
        self.tree[node] = value
        for _ in range(self.depth):  # recompute each ancestor from its two children
            node = np.unique(node // 2)
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]

    def get(self, index: np.ndarray) -> np.ndarray:
        return self.tree[np.asarray(index) + self.size]

    def sample(self, batch: int, rng: np.random.Generator):
        """Stratified sample -> (indices [B], probabilities [B])."""
        total = self.tree[1]
        u = (np.arange(batch) + rng.random(batch)) * (total / batch)
        node = np.ones(batch, np.int64)
        for _ in range(self.depth):
            left = 2 * node
            right_mass = self.tree[left]
            go_right = u > right_mass
            u = np.where(go_right, u - right_mass, u)
            node = left + go_right
        # Float drift can land on an empty leaf; take the most probable draw instead.
        probs = self.tree[node] / total
        bad = probs <= 0
        if bad.any():
            best = np.argmax(probs)
            node = np.where(bad, node[best], node)
            probs = np.where(bad, probs[best], probs)
        return node - self.size, probs


class HostReplay:
    """Prioritised replay on the host: NumPy arrays for the transitions, a SumTree of
    priority ** alpha."""

    def __init__(self, example: Transition, capacity: int, alpha: float, seed: int = 0):
        leaves, self.treedef = jax.tree.flatten(example)
        self.storage = [np.zeros((capacity,) + np.shape(x), np.asarray(x).dtype) for x in leaves]
        self.capacity = capacity
        self.alpha = alpha
        self.tree = SumTree(capacity)
        self.cursor = 0
        self.count = 0
        self.rng = np.random.default_rng(seed)

    def add(self, transitions: Transition, priorities: np.ndarray) -> None:
        leaves = jax.tree.leaves(transitions)
        n = priorities.shape[0]
        slots = (self.cursor + np.arange(n)) % self.capacity
        for store, x in zip(self.storage, leaves):
            store[slots] = x
        self.tree.set(slots, np.asarray(priorities, np.float64) ** self.alpha)
        self.cursor = int((self.cursor + n) % self.capacity)
        self.count = min(self.count + n, self.capacity)

    def sample(self, batch: int):
        idx, probs = self.tree.sample(batch, self.rng)
        batch_tree = jax.tree.unflatten(self.treedef, [s[idx] for s in self.storage])
        return batch_tree, idx, probs.astype(np.float32)

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.tree.set(idx, np.asarray(priorities, np.float64) ** self.alpha)


def nstep_numpy(records: dict, n_step: int, gamma: float, num_starts: int) -> Transition:
    """NumPy twin of ``jaxnas.trainer.actors.nstep_transitions`` (time-major records)."""
    def window(x, k):
        return x[k : k + num_starts]

    obs0 = jax.tree.map(lambda x: window(x, 0), records["obs"])
    reward = records["reward"]
    last = records["last"]
    ret = np.zeros_like(window(reward, 0))
    alive = np.ones_like(window(last, 0))
    discount = np.ones_like(ret)
    next_obs = jax.tree.map(lambda x: window(x, 0), records["next_obs"])
    for k in range(n_step):
        r, l = window(reward, k), window(last, k)
        ret = ret + np.where(alive, (gamma**k) * r, 0.0)
        discount = np.where(alive, gamma ** (k + 1), discount)  # no true terminals in this env
        step_next = jax.tree.map(lambda x, k=k: window(x, k), records["next_obs"])
        next_obs = jax.tree.map(
            lambda new, old: np.where(alive.reshape(alive.shape + (1,) * (new.ndim - 2)), new, old),
            step_next, next_obs,
        )
        alive = alive & ~l
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    return Transition(
        obs=jax.tree.map(flat, obs0),
        action=flat(window(records["action"], 0)),
        reward=flat(ret).astype(np.float32),
        discount=flat(discount).astype(np.float32),
        next_obs=jax.tree.map(flat, next_obs),
    )


class HostLoop:
    """The conventional driver: ``run(iterations)`` does that many Ape-X iterations."""

    def __init__(self, agent: Agent, env: NASEnv, seed: int = 0, params=None):
        cfg = agent.config
        self.agent, self.cfg = agent, cfg
        self.env = NumpyNASEnv(env, cfg.num_envs, seed)
        params = agent.init_params(jax.random.PRNGKey(seed)) if params is None else params
        self.learner = init_learner(params, agent.learner)
        self.replay = HostReplay(jax.tree.map(np.asarray, agent.example_transition()), cfg.replay_capacity, cfg.per_alpha, seed)
        self.epsilons = agent.epsilon_array()
        self.key = jax.random.PRNGKey(seed + 1)
        self.step_count = 0
        self.min_replay = max(cfg.min_replay, cfg.batch_size)
        apply_fn, lcfg = agent.apply_fn, agent.learner

        @jax.jit
        def act_fn(params, obs, epsilons, key, step):
            q = apply_fn(params, obs)
            return epsilon_greedy(jax.random.fold_in(key, step), q, obs.action_mask, epsilons)

        @jax.jit
        def td_fn(params, target_params, transitions):
            return td_errors(params, target_params, apply_fn, transitions)

        @functools.partial(jax.jit, donate_argnums=0)
        def update_fn(learner, batch, weights):
            learner, td, _ = learner_update(learner, batch, weights, lcfg, apply_fn)
            return learner, td

        self.act_fn, self.td_fn, self.update_fn = act_fn, td_fn, update_fn
        self.pending: Optional[list] = None
        self.timers = {"env": 0.0, "act": 0.0, "nstep": 0.0, "priorities": 0.0, "add": 0.0,
                       "sample": 0.0, "update": 0.0, "set_priorities": 0.0}
        self._warm_pending()

    def _one_step(self):
        t0 = time.perf_counter()
        obs = self.env.observe()
        t1 = time.perf_counter()
        action = np.asarray(self.act_fn(self.learner.params, obs, self.epsilons, self.key, self.step_count))
        t2 = time.perf_counter()
        self.step_count += 1
        reward, last, next_obs = self.env.step(action)
        t3 = time.perf_counter()
        self.timers["env"] += (t1 - t0) + (t3 - t2)
        self.timers["act"] += t2 - t1
        return {"obs": obs, "action": action.astype(np.int32), "reward": reward, "last": last, "next_obs": next_obs}

    def _warm_pending(self):
        self.pending = [self._one_step() for _ in range(self.cfg.n_step - 1)]

    def iteration(self):
        cfg = self.cfg
        steps = self.pending + [self._one_step() for _ in range(cfg.act_steps)]
        t0 = time.perf_counter()
        records = {k: jax.tree.map(lambda *xs: np.stack(xs), *[s[k] for s in steps]) for k in steps[0]}
        transitions = nstep_numpy(records, cfg.n_step, cfg.gamma, cfg.act_steps)
        self.pending = steps[cfg.act_steps :]
        t1 = time.perf_counter()
        td = np.asarray(self.td_fn(self.learner.params, self.learner.target_params, transitions))
        t2 = time.perf_counter()
        self.replay.add(transitions, np.abs(td) + cfg.priority_eps)
        t3 = time.perf_counter()
        self.timers["nstep"] += t1 - t0
        self.timers["priorities"] += t2 - t1
        self.timers["add"] += t3 - t2
        if self.replay.count < self.min_replay:
            return False
        beta = self.agent.learner.per_beta  # fixed beta (the default config does not anneal)
        for _ in range(cfg.updates_per_iteration):
            t0 = time.perf_counter()
            batch, idx, probs = self.replay.sample(cfg.batch_size)
            w = (self.replay.count * probs) ** (-beta)
            w = (w / w.max()).astype(np.float32)
            t1 = time.perf_counter()
            self.learner, td = self.update_fn(self.learner, batch, w)
            td = np.asarray(td)
            t2 = time.perf_counter()
            self.replay.update_priorities(idx, np.abs(td) + cfg.priority_eps)
            t3 = time.perf_counter()
            self.timers["sample"] += t1 - t0
            self.timers["update"] += t2 - t1
            self.timers["set_priorities"] += t3 - t2
        return True

    def fill(self) -> int:
        """Iterations until the learner starts (replay at min_replay); returns how many."""
        n = 0
        while self.replay.count < self.min_replay:
            self.iteration()
            n += 1
        return n

    def run(self, iterations: int) -> None:
        for _ in range(iterations):
            self.iteration()
        jax.block_until_ready(self.learner.params)
