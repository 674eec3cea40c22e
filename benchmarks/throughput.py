#!/usr/bin/env python
"""Throughput of the on-device Ape-X loop against a conventional host-driven loop.

    python benchmarks/throughput.py [--quick] [--json PATH] [--task class_object]

Measures, for several numbers of parallel environments (the paper preset's agent; the replay
ratio is held at the configured default by scaling learner updates per iteration with the env
count):

- env_only:   environment steps/s, random valid actions, vmapped, in one jitted scan;
- acting:     env steps/s of environment + Q-network forward + epsilon-greedy (the actors);
- full_loop:  env steps/s of the whole on-device loop (act, priorities, replay add, learn);
- host_loop:  env steps/s of the same agent driven by a Python loop over a NumPy environment with
              a host-side prioritised replay (benchmarks/host_loop.py), at equal work;
- compute_floor: time of the same Q-network forward passes and learner updates at the same
              shapes, back to back in one jitted scan (no environment, no replay);
- loop_efficiency = floor time / full-loop time; speedup = full loop / host loop (steps/s).

Plus peak memory for the paper preset (replay capacity 1M), replay capacity vs memory, and a
profile of one full-loop iteration split into act / priorities / add / learn. Compilation is
excluded from every timing (each function runs once before it is timed) and every timing ends
with ``block_until_ready``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import os
import platform
import re
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from host_loop import HostLoop, NumpyNASEnv  # noqa: E402

from jaxnas.agent.learner import init_learner, learner_update, td_errors  # noqa: E402
from jaxnas.agent.network import greedy_action  # noqa: E402
from jaxnas.data import load_table  # noqa: E402
from jaxnas.env.nas_env import EnvState, make_env  # noqa: E402
from jaxnas.experiments.presets import get_preset  # noqa: E402
from jaxnas.trainer import actors as actors_lib  # noqa: E402
from jaxnas.trainer.agent import make_agent  # noqa: E402
from jaxnas.trainer.loop import _learn, reset_for_task, train_chunk  # noqa: E402

FULL_ENVS = [32, 128, 512, 1024, 4096]
QUICK_ENVS = [32, 256, 1024]
ENV_STEPS_PER_CALL = 65536  # env steps per timed call of the env-only scan
ACTING_STEPS_PER_CALL = 16384  # ... and of the acting scan
UPDATES_PER_CALL = 8  # learner updates per timed call of the loops (iterations = this / updates per iteration)


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM, not ru_maxrss: a child started from a big
    parent inherits the parent's ru_maxrss across fork + exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def device_memory() -> dict | None:
    stats = jax.devices()[0].memory_stats()
    if not stats:
        return None
    return {k: stats[k] / 2**20 for k in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit") if k in stats}


def tree_mb(tree) -> float:
    return sum(x.nbytes for x in jax.tree.leaves(tree)) / 2**20


def timed(fn, min_time: float, min_reps: int = 5) -> float:
    """Best seconds per call of ``fn`` (which must block) over at least ``min_reps`` calls and
    ``min_time`` seconds, after one untimed warm-up call (compilation)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times))


def bench_config(base, num_envs: int):
    """The paper preset's agent with ``num_envs`` actors at the default replay ratio."""
    updates = max(1, round(base.replay_ratio * base.act_steps * num_envs / base.batch_size))
    return base.replace(num_envs=num_envs, updates_per_iteration=updates)


# -- the pieces ---------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("num_envs", "steps"))
def _env_scan(env, key, num_envs: int, steps: int):
    reset_key, key = jax.random.split(key)
    state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

    def body(carry, k):
        state, total = carry
        obs = jax.vmap(env.observe)(state)
        action = greedy_action(jax.random.uniform(k, obs.action_mask.shape), obs.action_mask)
        state, ts = jax.vmap(env.step_autoreset)(state, action)
        return (state, total + ts.reward.sum()), None

    (state, total), _ = jax.lax.scan(body, (state, 0.0), jax.random.split(key, steps))
    return total


@functools.partial(jax.jit, static_argnames=("apply_fn", "steps"))
def _acting_scan(env, apply_fn, params, epsilons, env_state, key, steps: int):
    env_state, records = actors_lib.rollout(env, apply_fn, params, epsilons, env_state, key, steps)
    return env_state, records.reward.sum()


@functools.partial(jax.jit, static_argnames=("agent", "iterations"))
def _floor_scan(agent, learner, act_obs, transitions, batches, weights, iterations: int):
    """The loop's network work without environment or replay: per iteration ``act_steps``
    acting forward passes of [num_envs], TD priorities of the new transitions, and
    ``updates_per_iteration`` learner updates. Outputs are summed into the carry so that no pass
    can be dropped; parameters change every update, so nothing can be hoisted out of the loop."""
    apply_fn = agent.apply_fn

    def iteration(carry, _):
        learner, acc = carry

        def act(acc, obs):
            q = apply_fn(learner.params, obs)
            return acc + greedy_action(q, obs.action_mask).sum().astype(jnp.float32), None

        acc, _ = jax.lax.scan(act, acc, act_obs)
        acc = acc + td_errors(learner.params, learner.target_params, apply_fn, transitions).sum()

        def update(learner, batch):
            learner, td, _ = learner_update(learner, batch, weights, agent.learner, apply_fn)
            return learner, td.sum()

        learner, tds = jax.lax.scan(update, learner, batches)
        return (learner, acc + tds.sum()), None

    (learner, acc), _ = jax.lax.scan(iteration, (learner, jnp.zeros((), jnp.float32)), None, length=iterations)
    return learner, acc


@functools.partial(jax.jit, static_argnames=("agent", "iterations"))
def _profile_act(agent, env, params, actors, key, iterations: int):
    cfg = agent.config

    def body(carry, k):
        actors, acc = carry
        actors, tr, _ = actors_lib.act(
            env, agent.apply_fn, params, agent.epsilon_array(), actors, k, cfg.act_steps, cfg.n_step, cfg.gamma
        )
        return (actors, acc + tr.reward.sum()), None

    (actors, acc), _ = jax.lax.scan(body, (actors, 0.0), jax.random.split(key, iterations))
    return acc


@functools.partial(jax.jit, static_argnames=("agent", "iterations"))
def _profile_priorities(agent, learner, transitions, iterations: int):
    def body(acc, _):
        # acc * 0 keeps the pass inside the loop (XLA does not fold x * 0 for floats).
        tr = transitions._replace(reward=transitions.reward + acc * 0.0)
        td = td_errors(learner.params, learner.target_params, agent.apply_fn, tr)
        return acc + td.sum(), None

    acc, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), None, length=iterations)
    return acc


@functools.partial(jax.jit, static_argnames=("agent", "iterations"), donate_argnames=("buffer",))
def _profile_add(agent, buffer, transitions, priorities, iterations: int):
    def body(buffer, i):
        return agent.replay.add(buffer, transitions, priorities + i.astype(jnp.float32) * 1e-6), None

    buffer, _ = jax.lax.scan(body, buffer, jnp.arange(iterations))
    return buffer


@functools.partial(jax.jit, static_argnames=("agent", "iterations"))
def _profile_learn(agent, state, key, iterations: int):
    def body(state, k):
        learner, buffer, metrics = _learn(agent, state, k, None)
        return state.replace(learner=learner, replay=buffer), metrics["loss"]

    state, losses = jax.lax.scan(body, state, jax.random.split(key, iterations))
    return losses.sum()


# -- measurements ----------------------------------------------------------------------------------

_reset_jit = jax.jit(reset_for_task, static_argnums=0)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check_host_env(env, num_envs: int = 64, steps: int = 60) -> bool:
    """The NumPy environment reproduces the JAX one (observations, rewards, episode ends)."""
    ne = NumpyNASEnv(env, num_envs, seed=3)
    state = EnvState(
        key=jnp.zeros((num_envs, 2), jnp.uint32), arch=jnp.asarray(ne.arch, jnp.int32),
        t=jnp.asarray(ne.t, jnp.int32), best_arch=jnp.asarray(ne.best, jnp.int32),
        history=jnp.asarray(ne.history, jnp.int32), distinct=jnp.asarray(ne.distinct, jnp.int32),
    )
    step = jax.jit(jax.vmap(env.step))
    observe = jax.jit(jax.vmap(env.observe))
    rng = np.random.default_rng(0)
    ok = True
    for _ in range(min(steps, env.horizon - 1)):  # within one episode (resets draw different archs)
        ok &= all(np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(ne.observe(), observe(state)))
        action = rng.integers(-1, env.num_actions + 1, num_envs)
        reward, last, next_obs = ne.step(action)
        state, ts = step(state, jnp.asarray(action, jnp.int32))
        ok &= np.allclose(reward, np.asarray(ts.reward)) and np.array_equal(last, np.asarray(ts.last()))
        ok &= all(np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(next_obs, ts.observation))
    return bool(ok)


def measure(num_envs_list, min_time, table, task, capacities) -> dict:
    base = get_preset("paper").config
    env = make_env(table, task, horizon=base.horizon, reward_mode=base.reward_mode, normalisation=base.normalisation)
    out = {k: {} for k in ("env_only", "acting", "full_loop", "host_loop", "compute_floor", "loop_efficiency", "speedup")}
    out["compute_floor_s_per_iteration"] = {}
    out["full_loop_s_per_iteration"] = {}
    out["host_loop_breakdown_s_per_iteration"] = {}
    out["configs"] = {}
    out["rounds"] = {}
    out["median_s_per_iteration"] = {}
    out["host_env_matches_jax"] = check_host_env(env)
    log(f"NumPy environment matches the JAX environment: {out['host_env_matches_jax']}")
    key = jax.random.PRNGKey(0)
    agent0 = make_agent(bench_config(base, num_envs_list[0]), env)
    params = agent0.init_params(jax.random.PRNGKey(1))  # shapes do not depend on the env count
    jax.block_until_ready(params)

    for n in num_envs_list:
        cfg = bench_config(base, n)
        agent = make_agent(cfg, env)
        out["configs"][n] = {
            "num_envs": n, "act_steps": cfg.act_steps, "updates_per_iteration": cfg.updates_per_iteration,
            "batch_size": cfg.batch_size, "replay_ratio": cfg.replay_ratio, "replay_capacity": cfg.replay_capacity,
        }
        log(f"{n} envs: environment only")
        steps = max(64, ENV_STEPS_PER_CALL // n)
        t = timed(lambda: jax.block_until_ready(_env_scan(env, key, n, steps)), min_time)
        out["env_only"][n] = n * steps / t
        steps = max(8, ACTING_STEPS_PER_CALL // n)

        log(f"{n} envs: acting")
        env_state, _ = jax.vmap(env.reset)(jax.random.split(key, n))
        t = timed(lambda: jax.block_until_ready(
            _acting_scan(env, agent.apply_fn, params, agent.epsilon_array(), env_state, key, steps)), min_time)
        out["acting"][n] = n * steps / t

        log(f"{n} envs: full on-device loop ({cfg.updates_per_iteration} updates/iteration), compute floor, host loop")
        iters = max(1, UPDATES_PER_CALL // cfg.updates_per_iteration)
        fresh = init_learner(jax.tree.map(jnp.copy, params), agent.learner)  # the loop donates its state
        state = _reset_jit(agent, env, fresh, jax.random.PRNGKey(2), jax.random.PRNGKey(3))
        holder = {"state": state}

        def chunk():
            holder["state"], m = train_chunk(agent, env, holder["state"], iters)
            jax.block_until_ready(holder["state"])
            return m

        while not bool(np.asarray(chunk().learning).all()):  # fill replay to min_replay (and compile)
            pass
        chunk()

        # The floor's inputs: real transitions from the replay, at the loop's shapes.
        exp = jax.tree.map(lambda x: x[0], holder["state"].replay.experience)
        m = cfg.steps_per_iteration
        u, b = cfg.updates_per_iteration, cfg.batch_size
        transitions = jax.tree.map(lambda x: x[:m], exp)
        act_obs = jax.tree.map(lambda x: x[:m].reshape((cfg.act_steps, n) + x.shape[1:]), exp.obs)
        batches = jax.tree.map(lambda x: x[: u * b].reshape((u, b) + x.shape[1:]), exp)
        del exp
        weights = jnp.ones((b,), jnp.float32)
        learner = jax.tree.map(jnp.copy, holder["state"].learner)

        def floor():
            jax.block_until_ready(_floor_scan(agent, learner, act_obs, transitions, batches, weights, iters))

        floor()
        host = HostLoop(agent, env, seed=0, params=jax.tree.map(jnp.copy, params))
        host.fill()
        host.run(2)  # compiles the update
        for k in host.timers:
            host.timers[k] = 0.0

        # Interleaved rounds, so that a change in machine load hits all three alike.
        times = {"full": [], "floor": [], "host": []}
        calls = {"full": chunk, "floor": floor, "host": lambda: host.run(iters)}
        begin = time.perf_counter()
        while len(times["full"]) < 5 or time.perf_counter() - begin < 3 * min_time:
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) / iters)
        assert bool(np.asarray(chunk().learning).all())
        # Best of the rounds: on a shared machine the minimum is the least disturbed estimate.
        t_full, t_floor, t_host = (float(np.min(times[k])) for k in ("full", "floor", "host"))
        out["median_s_per_iteration"][n] = {k: float(np.median(v)) for k, v in times.items()}
        steps = cfg.steps_per_iteration
        out["full_loop"][n] = steps / t_full
        out["full_loop_s_per_iteration"][n] = t_full
        out["compute_floor_s_per_iteration"][n] = t_floor
        out["compute_floor"][n] = steps / t_floor  # env steps/s if only the network work ran
        out["loop_efficiency"][n] = t_floor / t_full
        out["host_loop"][n] = steps / t_host
        host_iters = len(times["host"]) * iters
        out["host_loop_breakdown_s_per_iteration"][n] = {k: v / host_iters for k, v in host.timers.items()}
        out["speedup"][n] = t_host / t_full
        out["rounds"][n] = len(times["full"])
        if n == 32:
            out["memory_paper_preset"] = {
                "config": "get_preset('paper').config (32 envs, replay capacity 1,000,000)",
                "peak_host_rss_mb_benchmark_process": peak_rss_mb(),
                "host_rss_mb_now": rss_mb(),
                "train_state_mb": tree_mb(holder["state"]),
                "replay_mb": tree_mb(holder["state"].replay),
                "device_memory_mb": device_memory(),
            }
            out["memory_paper_preset"]["fresh_process"] = run_probe(["--probe-paper", str(iters)])
            out["profile_32_envs"] = profile(agent, env, holder["state"], min_time, t_full)
            out["kernels_32_envs"] = kernel_counts(agent, env, holder["state"], iters, host)
        del holder, learner, transitions, batches, act_obs, host
        gc.collect()
        log(f"{n} envs: env {out['env_only'][n]:,.0f}  acting {out['acting'][n]:,.0f}  full {out['full_loop'][n]:,.0f}  "
            f"host {out['host_loop'][n]:,.0f} steps/s; efficiency {out['loop_efficiency'][n]:.2f}, speedup {out['speedup'][n]:.2f}")

    out["replay_capacity_vs_memory"] = replay_memory(agent0, capacities)
    out["speedup_at_32_envs"] = out["speedup"].get(32)
    out["speedup_best"] = max(out["speedup"].values())
    out["speedup_best_envs"] = max(out["speedup"], key=out["speedup"].get)
    return out


def profile(agent, env, state, min_time, full_s_per_iter) -> dict:
    """Seconds per iteration of each part of a full-loop iteration, each in its own jitted scan
    (at the state's shapes; the learner runs on a full replay)."""
    log("32 envs: profile of one iteration (act / priorities / add / learn)")
    cfg = agent.config
    iters = 32
    key = jax.random.PRNGKey(5)
    params = state.learner.params
    res = {}
    t = timed(lambda: jax.block_until_ready(_profile_act(agent, env, params, state.actors, key, iters)), min_time)
    res["act (env + Q forward + n-step)"] = t / iters
    _, transitions, _ = actors_lib.act(
        env, agent.apply_fn, params, agent.epsilon_array(), state.actors, key, cfg.act_steps, cfg.n_step, cfg.gamma
    )
    t = timed(lambda: jax.block_until_ready(_profile_priorities(agent, state.learner, transitions, iters)), min_time)
    res["priorities (TD of new transitions)"] = t / iters
    prios = jnp.ones((cfg.steps_per_iteration,), jnp.float32)
    holder = {"buffer": jax.tree.map(jnp.copy, state.replay)}

    def add():
        holder["buffer"] = _profile_add(agent, holder["buffer"], transitions, prios, iters)
        jax.block_until_ready(holder["buffer"])

    res["replay add (write + sum-tree priorities)"] = timed(add, min_time) / iters
    del holder
    t = timed(lambda: jax.block_until_ready(_profile_learn(agent, state, key, iters)), min_time)
    res["learn (sample + update + priority update)"] = t / iters
    parts = sum(res.values())
    return {
        "s_per_iteration": res,
        "sum_of_parts": parts,
        "full_iteration": full_s_per_iter,
        "share_of_full": {k: v / full_s_per_iter for k, v in res.items()},
    }


def replay_memory(agent, capacities) -> list[dict]:
    """Replay buffer bytes (exact, from the arrays) and the host RSS they add, each capacity in a
    fresh process (in one process, freed buffers are reused and hide the growth)."""
    rows = []
    for cap in capacities:
        log(f"replay capacity {cap:,}: memory (fresh process)")
        rows.append({"capacity": cap, **run_probe(["--probe-replay", str(cap)])})
    return rows


def run_probe(args: list[str]) -> dict:
    import subprocess

    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True, timeout=900)
    lines = [l for l in out.stdout.splitlines() if l.startswith("PROBE ")]
    if out.returncode != 0 or not lines:
        return {"error": out.stderr[-800:]}
    return json.loads(lines[-1][len("PROBE "):])


def probe_paper(iterations: int) -> None:
    """(In a fresh process) peak host RSS of the paper preset: state with a 1M replay, then
    training chunks until the learner runs (the chunk is loaded from the compilation cache the
    parent filled, so XLA's compiler is not part of this peak)."""
    base = get_preset("paper").config
    env = make_env(load_table("micro"), "class_object", horizon=base.horizon, reward_mode=base.reward_mode,
                   normalisation=base.normalisation)
    agent = make_agent(bench_config(base, 32), env)
    rss0 = rss_mb()
    params = agent.init_params(jax.random.PRNGKey(1))
    learner = init_learner(jax.tree.map(jnp.copy, params), agent.learner)
    state = jax.block_until_ready(_reset_jit(agent, env, learner, jax.random.PRNGKey(2), jax.random.PRNGKey(3)))
    rss_state = rss_mb()
    t0 = time.perf_counter()
    learning = False
    while not learning:
        state, m = train_chunk(agent, env, state, iterations)
        learning = bool(np.asarray(m.learning).all())
    state, m = train_chunk(agent, env, state, iterations)
    jax.block_until_ready(state)
    print("PROBE " + json.dumps({
        "rss_after_imports_mb": rss0, "rss_with_state_mb": rss_state, "rss_after_training_mb": rss_mb(),
        "peak_rss_mb": peak_rss_mb(), "train_state_mb": tree_mb(state), "replay_mb": tree_mb(state.replay),
        "device_memory_mb": device_memory(), "seconds": time.perf_counter() - t0,
    }), flush=True)


def probe_replay(capacity: int) -> None:
    """(In a fresh process) RSS before and after creating the paper preset's replay buffer."""
    from jaxnas.agent.replay import make_replay

    base = get_preset("paper").config
    env = make_env(load_table("micro"), "class_object", horizon=base.horizon)
    agent = make_agent(base, env)
    example = agent.example_transition()
    replay = make_replay(capacity, base.batch_size, alpha=base.per_alpha)
    init = jax.jit(replay.init).lower(example).compile()  # compile outside the measured window
    gc.collect()
    before = rss_mb()
    buffer = jax.block_until_ready(init(example))
    after = rss_mb()
    print("PROBE " + json.dumps({
        "capacity": capacity, "buffer_mb": tree_mb(buffer),
        "bytes_per_transition": tree_mb(buffer) * 2**20 / capacity,
        "host_rss_increase_mb": after - before, "process_peak_rss_mb": peak_rss_mb(),
    }), flush=True)


# -- report -----------------------------------------------------------------------------------------


def table_text(res: dict) -> str:
    ns = sorted(res["full_loop"])
    head = ["envs", "env only", "acting", "full loop", "floor", "efficiency", "host loop", "speedup"]
    rows = [head]
    for n in ns:
        rows.append([
            str(n), f"{res['env_only'][n]:,.0f}", f"{res['acting'][n]:,.0f}", f"{res['full_loop'][n]:,.0f}",
            f"{res['compute_floor'][n]:,.0f}", f"{res['loop_efficiency'][n]:.2f}", f"{res['host_loop'][n]:,.0f}",
            f"{res['speedup'][n]:.2f}x",
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(lines)


_TRIVIAL_OPS = {
    "parameter", "constant", "tuple", "get-tuple-element", "bitcast", "copy-start", "copy-done",
    "after-all", "partition-id", "replica-id", "iota", "broadcast", "reshape",
}


_OP = re.compile(r"\s([a-z][a-z0-9\-]*)\(")


def count_kernels(hlo_text: str) -> int:
    """Instructions that do work (fusions, dots, gathers, loops, ...) in the computations of an
    optimised HLO module that run as a sequence (entry, loop bodies, branches), not inside a
    fusion or reducer: a proxy for the number of kernels one execution launches."""
    inner = set(re.findall(r"(?:calls|to_apply)=%?([\w.\-]+)", hlo_text))
    count, current = 0, None
    for line in hlo_text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            tokens = line.replace("ENTRY", "").split()
            current = tokens[0].lstrip("%") if tokens else None
            continue
        if current is None or current in inner or "=" not in line:
            continue
        match = _OP.search(" " + line.split("=", 1)[1])
        if match and match.group(1) not in _TRIVIAL_OPS:
            count += 1
    return count


def kernel_counts(agent, env, state, iters, host) -> dict:
    """Kernel-count proxies (CPU-optimised HLO; compilations are cached, so this is cheap)."""
    cfg = agent.config
    loop = count_kernels(train_chunk.lower(agent, env, state, iters).compile().as_text())
    batch, idx, probs = host.replay.sample(cfg.batch_size)
    update = count_kernels(host.update_fn.lower(host.learner, batch, probs).compile().as_text())
    obs = host.env.observe()
    act = count_kernels(host.act_fn.lower(host.learner.params, obs, host.epsilons, host.key, host.step_count).compile().as_text())
    trans, _, _ = host.replay.sample(cfg.steps_per_iteration)
    td = count_kernels(host.td_fn.lower(host.learner.params, host.learner.target_params, trans).compile().as_text())
    flops = host.update_fn.lower(host.learner, batch, probs).compile().cost_analysis() or {}
    return {"loop_iteration": loop, "update": update, "act": act, "priorities": td,
            "update_flops": float(flops.get("flops", float("nan")))}


def projection(res: dict) -> dict:
    """A GPU projection from quantities measured here (no GPU was available). Every assumption
    is in ``assumptions``; nothing in it was measured on a GPU."""
    n = 32
    cfg = res["configs"][n]
    k = res["kernels_32_envs"]
    host_b = res["host_loop_breakdown_s_per_iteration"][n]
    u = cfg["updates_per_iteration"]
    assumptions = {
        # Small, latency-bound kernels issued back to back from one XLA program (launch and
        # loop-predicate overheads included); a low and a high guess.
        "gpu_seconds_per_kernel": {"low": 2e-6, "high": 8e-6},
        "gpu_host_call_latency_s": 50e-6,  # dispatch + device-to-host copy + sync, per jitted call
        "kernel_counts": "instructions of the CPU-optimised HLO of the same programs (proxy for GPU kernels); "
                         "the loop's count holds one learner update, the other updates_per_iteration - 1 are added",
    }
    steps = cfg["num_envs"] * cfg["act_steps"]
    loop_kernels = k["loop_iteration"] + (u - 1) * k["update"]
    # Host loop: the host-side work measured here (Python, NumPy env, n-step, sum tree) stays;
    # each jitted call adds its latency and its kernels.
    host_side = sum(v for name, v in host_b.items() if name not in ("act", "priorities", "update"))
    calls = cfg["act_steps"] + 1 + u
    host_kernels = cfg["act_steps"] * k["act"] + k["priorities"] + u * k["update"]
    updates_10m = 10_000_000 * cfg["replay_ratio"] / cfg["batch_size"]
    out = {
        "label": "PROJECTION, not a measurement: no GPU was available in this session",
        "assumptions": assumptions,
        "kernel_counts_32_envs": {**k, "loop_iteration_with_all_updates": loop_kernels},
        "measured_host_side_s_per_iteration_32_envs": host_side,
        "sequential_learner_updates_for_10M_steps": updates_10m,
        "update_time_budget_for_10_minutes_s": 600 / updates_10m,
        "measured_cpu_paper_pretraining_10M_steps_hours": 10_000_000 / res["full_loop"][n] / 3600,
    }
    for case, t_kernel in assumptions["gpu_seconds_per_kernel"].items():
        loop_iter = loop_kernels * t_kernel
        host_iter = host_side + calls * assumptions["gpu_host_call_latency_s"] + host_kernels * t_kernel
        out[case] = {
            "gpu_full_loop_steps_per_s_32_envs": steps / loop_iter,
            "gpu_host_loop_steps_per_s_32_envs": steps / host_iter,
            "speedup_32_envs": host_iter / loop_iter,
            "paper_pretraining_10M_steps_minutes": 10_000_000 * loop_iter / steps / 60,
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"env counts {QUICK_ENVS} and shorter timings (a few minutes)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    p.add_argument("--task", default="class_object")
    p.add_argument("--envs", default=None, help="comma-separated env counts (multiples of 32)")
    p.add_argument("--probe-replay", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--probe-paper", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe_replay:
        probe_replay(args.probe_replay)
        return 0
    if args.probe_paper:
        probe_paper(args.probe_paper)
        return 0
    # A private compilation cache, so that the fresh-process memory probe loads the paper preset's
    # compiled loop instead of compiling it again (timings never include compilation anyway).
    import tempfile

    cache_dir = tempfile.mkdtemp(prefix="jaxnas-bench-xla-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache_dir
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    envs = [int(x) for x in args.envs.split(",")] if args.envs else (QUICK_ENVS if args.quick else FULL_ENVS)
    if any(n % 32 for n in envs) or 32 not in envs:
        p.error("env counts must be multiples of 32 and include 32")
    min_time = 1.5 if args.quick else 5.0
    capacities = [10_000, 100_000, 1_000_000] if args.quick else [10_000, 100_000, 1_000_000, 4_000_000]
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    table = load_table("micro")
    res = measure(sorted(envs), min_time, table, args.task, capacities)
    res["gpu_projection"] = projection(res)
    res["meta"] = {
        "command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        "date": datetime.date.today().isoformat(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "wall_clock_s": time.perf_counter() - started,
    }
    print()
    ratio = res["configs"][32]["replay_ratio"]
    print(f"env steps/s on {jax.default_backend()} ({os.cpu_count()} cores), task {args.task}, paper preset agent, "
          f"replay ratio {ratio:g} (learner samples per env step)")
    print(table_text(res))
    prof = res["profile_32_envs"]
    print("\nprofile of one full-loop iteration at 32 envs (ms):")
    for k, v in prof["s_per_iteration"].items():
        print(f"  {k:45s} {v * 1e3:7.2f}  ({prof['share_of_full'][k]:.0%} of the full iteration)")
    print(f"  {'sum of parts / full iteration':45s} {prof['sum_of_parts'] * 1e3:7.2f} / {prof['full_iteration'] * 1e3:.2f}")
    mem = res["memory_paper_preset"]
    fresh = mem["fresh_process"]
    print(f"\npaper preset (32 envs, replay 1M): train state {mem['train_state_mb']:.0f} MB (replay {mem['replay_mb']:.0f} MB); "
          f"peak host RSS {fresh.get('peak_rss_mb', float('nan')):.0f} MB in a fresh process that only trains it "
          f"({fresh.get('rss_after_imports_mb', float('nan')):.0f} MB after imports), "
          f"{mem['peak_host_rss_mb_benchmark_process']:.0f} MB in this process so far (with XLA compilations); "
          f"device memory stats: {mem['device_memory_mb']}")
    for row in res["replay_capacity_vs_memory"]:
        if "error" in row:
            print(f"  replay capacity {row['capacity']:>9,}: probe failed: {row['error']}")
            continue
        print(f"  replay capacity {row['capacity']:>9,}: buffer {row['buffer_mb']:8.1f} MB "
              f"({row['bytes_per_transition']:.0f} B/transition), host RSS +{row['host_rss_increase_mb']:.0f} MB "
              f"(fresh process, peak RSS {row['process_peak_rss_mb']:.0f} MB)")
    print(f"\nspeedup at 32 envs: {res['speedup_at_32_envs']:.2f}x; best: {res['speedup_best']:.2f}x at {res['speedup_best_envs']} envs; "
          f"loop efficiency at 32 envs: {res['loop_efficiency'][32]:.2f}")
    proj = res["gpu_projection"]
    print(f"\n{proj['label']}:")
    for case in ("low", "high"):
        c = proj[case]
        print(f"  {proj['assumptions']['gpu_seconds_per_kernel'][case] * 1e6:.0f} us/kernel: on-device loop "
              f"{c['gpu_full_loop_steps_per_s_32_envs']:,.0f} steps/s at 32 envs, {c['speedup_32_envs']:.1f}x over the host loop, "
              f"paper pretraining (10M steps) {c['paper_pretraining_10M_steps_minutes']:.0f} min")
    print(f"  ({proj['sequential_learner_updates_for_10M_steps']:,.0f} sequential learner updates in 10M steps: "
          f"{proj['update_time_budget_for_10_minutes_s'] * 1e3:.2f} ms each for 10 minutes; kernel counts "
          f"{proj['kernel_counts_32_envs']})")
    print(f"  measured on this CPU: 10M steps take {proj['measured_cpu_paper_pretraining_10M_steps_hours']:.1f} h")
    print(f"\ntotal {res['meta']['wall_clock_s']:.0f} s; load average (1, 5, 15 min) at start "
          f"{tuple(round(x, 1) for x in load_at_start)}, at end {tuple(round(x, 1) for x in os.getloadavg())}")
    import shutil

    shutil.rmtree(cache_dir, ignore_errors=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, default=float)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
