#!/usr/bin/env python
"""Two processes on this machine training one agent together (``jax.distributed``, CPU).

    python benchmarks/two_process_demo.py [--local-devices 2] [--chunks 6]

The parent starts two worker processes. Each calls ``jax.distributed.initialize`` with the
coordinator on 127.0.0.1, gets ``--local-devices`` CPU devices, and joins a mesh over all
2 x local devices. Every device has its own actors and replay shard; the learner's gradients
are averaged across all devices of both processes (``lax.pmean`` inside ``shard_map``, which
needs cross-process collectives: gloo on the CPU backend). The workers report a checksum of
their parameters after every chunk; the parent checks that both processes hold identical
parameters, that the cross-process ``psum`` is right, and prints what was shown.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def worker(args) -> None:
    import jax

    jax.config.update("jax_num_cpu_devices", args.local_devices)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator, num_processes=2, process_id=args.process_id,
        initialization_timeout=120,
    )
    import hashlib

    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import PartitionSpec as P

    from jaxnas.data import load_table
    from jaxnas.env import make_env
    from jaxnas.experiments.presets import get_preset
    from jaxnas.trainer import distributed as dist
    from jaxnas.trainer.agent import make_agent
    from jaxnas.trainer.evaluate import evaluate

    def report(**kw):
        print("REPORT " + json.dumps({"process": jax.process_index(), **kw}), flush=True)

    report(event="initialised", process_count=jax.process_count(), global_devices=len(jax.devices()),
           local_devices=len(jax.local_devices()), backend=jax.default_backend())
    mesh = dist.make_mesh()  # every device of both processes

    # 1. A bare cross-process collective: the sum of every device's (process index + 1).
    local = np.asarray([[jax.process_index() + 1.0]] * len(jax.local_devices()), np.float32)
    ones = dist.from_process_local(local, mesh, P(dist.AXIS))
    total = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, dist.AXIS), mesh=mesh, in_specs=P(dist.AXIS), out_specs=P(dist.AXIS)))(ones)
    psum = float(np.asarray(total.addressable_shards[0].data).ravel()[0])
    report(event="psum", value=psum, expected=float(sum((p + 1) * args.local_devices for p in range(2))))

    # 2. Data-parallel training across both processes.
    table = load_table("micro", args.data)
    cfg = get_preset("tiny").config
    env = make_env(table, "class_object", horizon=cfg.horizon, reward_mode=cfg.reward_mode, normalisation=cfg.normalisation)
    agent = make_agent(cfg, env)
    state = dist.init_sharded_state(agent, env, jax.random.PRNGKey(0), mesh)
    env_global = dist.replicate(env, mesh)
    eval_key = jax.random.PRNGKey(7)

    def checksum(st):
        params = dist.replica_params(st)
        return hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in jax.tree.leaves(params))).hexdigest()[:16]

    def score(st):
        return evaluate(agent.apply_fn, dist.replica_params(st), env, eval_key, 256)["normalised_score"]

    report(event="start", checksum=checksum(state), spread=dist.params_spread(state), score=score(state))
    for c in range(args.chunks):
        t0 = time.perf_counter()
        state, metrics = dist.train_chunk_sharded(agent, env_global, state, 8, mesh)
        jax.block_until_ready(state)
        learning = np.asarray(metrics.learning.addressable_shards[0].data).tolist()
        report(event="chunk", chunk=c, seconds=time.perf_counter() - t0, checksum=checksum(state),
               spread=dist.params_spread(state), learning_last=bool(learning[0][-1]),
               total_env_steps=dist.total_env_steps(state))
    # Each process's devices collected their own experience: the replays must differ.
    actions = np.concatenate([np.asarray(s.data).ravel() for s in state.replay.experience.action.addressable_shards])
    report(event="end", checksum=checksum(state), score=score(state),
           replay_checksum=hashlib.sha256(actions.tobytes()).hexdigest()[:16])
    jax.distributed.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--local-devices", type=int, default=2, help="CPU devices per process (default 2)")
    p.add_argument("--chunks", type=int, default=6, help="training chunks of 8 iterations (default 6)")
    p.add_argument("--data", default=None)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--coordinator", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.process_id is not None:
        worker(args)
        return 0

    coordinator = f"127.0.0.1:{free_port()}"
    env = dict(os.environ)
    if "xla_force_host_platform_device_count" in env.get("XLA_FLAGS", ""):
        env.pop("XLA_FLAGS")  # the workers set their device count with jax_num_cpu_devices
    base = [sys.executable, str(Path(__file__).resolve()), "--coordinator", coordinator,
            "--local-devices", str(args.local_devices), "--chunks", str(args.chunks)]
    if args.data:
        base += ["--data", args.data]
    print(f"coordinator {coordinator}; 2 processes x {args.local_devices} CPU devices", flush=True)
    procs = [subprocess.Popen(base + ["--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for i in range(2)]
    outs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            print("timed out", file=sys.stderr)
            return 1
        outs.append((proc.returncode, out, err))
    reports = {0: [], 1: []}
    for i, (rc, out, err) in enumerate(outs):
        for line in out.splitlines():
            if line.startswith("REPORT "):
                r = json.loads(line[len("REPORT "):])
                reports[r["process"]].append(r)
        if rc != 0:
            print(f"process {i} exited with {rc}:\n{err[-4000:]}", file=sys.stderr)
    for pid in (0, 1):
        for r in reports[pid]:
            print(f"process {pid}: {r}")
    ok = all(rc == 0 for rc, _, _ in outs)
    if ok:
        a, b = reports[0], reports[1]
        same = [x.get("checksum") == y.get("checksum") for x, y in zip(a, b) if "checksum" in x]
        psum_ok = all(r["value"] == r["expected"] for r in a + b if r["event"] == "psum")
        print(f"\ncross-process psum correct: {psum_ok}")
        print(f"parameters identical in both processes after every chunk: {all(same)} ({len(same)} checks)")
        print(f"parameters identical across each process's local devices: "
              f"{all(r.get('spread', 0.0) == 0.0 for r in a + b)}")
        starts = [r for r in a if r["event"] == "start"]
        ends = [r for r in a if r["event"] == "end"]
        replays_differ = ends[0]["replay_checksum"] != [r for r in b if r["event"] == "end"][0]["replay_checksum"]
        print(f"the processes' replay shards differ (own actors, own experience): {replays_differ}")
        print(f"greedy score (256 episodes): {starts[0]['score']:.4f} -> {ends[0]['score']:.4f}")
        ok = psum_ok and all(same) and replays_differ
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
