"""Running one training phase: chunks on device, evaluation, progress, checkpoints, interrupts.

A phase trains an agent on one environment for a budget of environment steps. It evaluates the
greedy policy every ``config.eval_every`` steps (the learning curve), shows a progress bar, and
saves a checkpoint at every evaluation point and when interrupted, so that ``resume=True``
continues exactly where it stopped: chunk boundaries, PRNG keys and evaluation keys are all
fixed by the configuration, so a resumed phase ends with the same numbers as an uninterrupted
one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Optional

import chex
import jax
import numpy as np
from tqdm.auto import tqdm

from jaxnas.env.nas_env import NASEnv
from jaxnas.trainer.agent import Agent
from jaxnas.trainer.checkpoint import Checkpointer
from jaxnas.trainer.evaluate import evaluate
from jaxnas.trainer.loop import TrainState, train_chunk

MAX_CHUNK_ITERATIONS = 200


class Interrupted(Exception):
    """Raised after a stop request: the phase's checkpoint is saved and complete."""

    def __init__(self, checkpoint_dir: Path):
        super().__init__(f"interrupted; checkpoint saved in {checkpoint_dir}")
        self.checkpoint_dir = checkpoint_dir


@dataclasses.dataclass
class PhaseResult:
    state: TrainState
    curve_env_steps: list[int]
    curve_scores: list[float]
    evaluations: list[dict]
    wall_clock_s: float
    env_steps: int

    @property
    def final(self) -> dict:
        return self.evaluations[-1]

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.wall_clock_s if self.wall_clock_s > 0 else float("nan")

    def prefix(self, env_steps: int) -> "PhaseResult":
        """This phase as it stood at its first evaluation at or after ``env_steps`` (the last one
        if the phase is shorter); the state is the end state."""
        k = next(
            (i for i, s in enumerate(self.curve_env_steps) if s >= env_steps),
            len(self.curve_env_steps) - 1,
        )
        frac = self.curve_env_steps[k] / max(self.env_steps, 1)
        return PhaseResult(
            state=self.state,
            curve_env_steps=self.curve_env_steps[: k + 1],
            curve_scores=self.curve_scores[: k + 1],
            evaluations=self.evaluations[: k + 1],
            wall_clock_s=self.wall_clock_s * frac,
            env_steps=self.curve_env_steps[k],
        )


def chunk_plan(config, total_steps: int) -> tuple[int, int, int]:
    """(iterations per chunk, chunks per evaluation, number of evaluations after the start)."""
    spi = config.steps_per_iteration
    iters_per_eval = max(1, math.ceil(config.eval_every / spi))
    num_evals = max(1, math.ceil(total_steps / (iters_per_eval * spi)))
    chunk = max(d for d in range(1, min(iters_per_eval, MAX_CHUNK_ITERATIONS) + 1) if iters_per_eval % d == 0)
    return chunk, iters_per_eval // chunk, num_evals


def run_phase(
    agent: Agent,
    env: NASEnv,
    state: TrainState,
    total_steps: int,
    eval_key: chex.PRNGKey,
    *,
    name: str = "train",
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    checkpoint_every: int = 1,
) -> PhaseResult:
    """Trains ``state`` on ``env`` for ``total_steps`` environment steps (rounded up to whole
    evaluation intervals); ``state`` is the phase's starting point. A checkpoint is written every
    ``checkpoint_every`` evaluations, at the end, and when ``should_stop()`` turns true (checked
    after every chunk)."""
    cfg = agent.config
    chunk, chunks_per_eval, num_evals = chunk_plan(cfg, total_steps)
    ckpt = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    meta = {"chunks_done": 0, "curve_env_steps": [], "curve_scores": [], "evaluations": [], "wall_clock_s": 0.0}
    base_steps = int(state.env_steps)

    def record(st):
        ev = evaluate(agent.apply_fn, st.learner.params, env, eval_key, cfg.eval_episodes)
        meta["evaluations"].append(ev)
        meta["curve_env_steps"].append(int(st.env_steps) - base_steps)
        meta["curve_scores"].append(ev["normalised_score"])

    if resume and ckpt is not None and ckpt.latest_step() is not None:
        state, meta = ckpt.restore(state)
        base_steps = meta["base_steps"]
    else:
        record(state)
    meta["base_steps"] = base_steps

    total_chunks = num_evals * chunks_per_eval
    steps_per_chunk = chunk * cfg.steps_per_iteration
    bar = tqdm(
        total=total_chunks * steps_per_chunk, initial=meta["chunks_done"] * steps_per_chunk,
        desc=name, unit="step", unit_scale=True, disable=not progress, dynamic_ncols=True,
        smoothing=0.1,
    )
    wall_before = meta["wall_clock_s"]
    start = time.perf_counter()
    try:
        while meta["chunks_done"] < total_chunks:
            state, _ = train_chunk(agent, env, state, chunk)
            jax.block_until_ready(state.env_steps)
            meta["chunks_done"] += 1
            bar.update(steps_per_chunk)
            at_eval = meta["chunks_done"] % chunks_per_eval == 0
            if at_eval:
                record(state)
                bar.set_postfix(score=f"{meta['curve_scores'][-1]:.4f}")
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
    return PhaseResult(
        state=state,
        curve_env_steps=list(meta["curve_env_steps"]),
        curve_scores=list(meta["curve_scores"]),
        evaluations=list(meta["evaluations"]),
        wall_clock_s=float(meta["wall_clock_s"]),
        env_steps=int(state.env_steps) - base_steps,
    )
