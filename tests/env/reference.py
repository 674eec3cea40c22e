"""A plain-Python reference of the NAS environment (no JAX, no numpy), written from the spec.

It takes the architecture encodings and raw metrics as Python lists; the starting architecture
is passed in explicitly (the JAX environment draws it from its key).
"""

from __future__ import annotations

import math

FIRST, MID, LAST = 0, 1, 2


def normalise_minmax(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def normalise_rank(values: list[float]) -> list[float]:
    """Quantile in [0, 1]: 0-based rank / (n - 1), tied values sharing their average rank."""
    n = len(values)
    if n == 1:
        return [0.0]
    order = sorted(range(n), key=lambda i: values[i])
    out = [0.0] * n
    start = 0
    while start < n:
        end = start
        while end + 1 < n and values[order[end + 1]] == values[order[start]]:
            end += 1
        avg = (start + end) / 2.0
        for k in range(start, end + 1):
            out[order[k]] = avg / (n - 1)
        start = end + 1
    return out


NORMALISE = {"minmax": normalise_minmax, "rank": normalise_rank}


class ReferenceSpace:
    def __init__(self, encodings, num_values: int):
        self.encodings = [tuple(int(x) for x in e) for e in encodings]
        self.index = {e: i for i, e in enumerate(self.encodings)}
        self.num_values = num_values
        self.length = len(self.encodings[0])
        self.num_actions = self.length * num_values

    def move(self, arch: int, action: int):
        """Index reached by ``action`` from ``arch``, or None when the action is invalid."""
        if not 0 <= action < self.num_actions:
            return None
        p, v = divmod(action, self.num_values)
        code = self.encodings[arch]
        if code[p] == v:
            return None
        return self.index.get(code[:p] + (v,) + code[p + 1 :])

    def mask(self, arch: int) -> list[bool]:
        return [self.move(arch, a) is not None for a in range(self.num_actions)]


class ReferenceEnv:
    def __init__(self, space: ReferenceSpace, valid, test, *, horizon, reward_mode, normalisation):
        self.space = space
        self.valid = [float(v) for v in valid]
        self.test = None if test is None else [float(v) for v in test]
        self.score = NORMALISE[normalisation](self.valid)
        self.horizon = horizon
        self.reward_mode = reward_mode

    # The state is plain attributes, so a test can also set up an arbitrary mid-episode state.
    def set_state(self, arch: int, t: int, visited, best_arch: int) -> None:
        self.arch, self.t, self.visited, self.best_arch = arch, t, set(visited), best_arch

    def reset(self, arch: int) -> dict:
        self.set_state(arch, 0, {arch}, arch)
        self.start_score = self.score[arch]
        return self._timestep(FIRST, 0.0)

    def step(self, action: int) -> dict:
        nxt = self.space.move(self.arch, action)
        new = self.arch if nxt is None else nxt
        old_score = self.score[self.arch]
        best_score = self.score[self.best_arch]
        new_score = self.score[new]
        if self.reward_mode == "value":
            reward = new_score
        elif self.reward_mode == "improvement":
            reward = max(new_score - best_score, 0.0)
        elif self.reward_mode == "delta":
            reward = new_score - old_score
        else:
            raise ValueError(self.reward_mode)
        self.arch = new
        self.t += 1
        self.visited.add(new)
        if self.valid[new] > self.valid[self.best_arch]:
            self.best_arch = new
        return self._timestep(LAST if self.t >= self.horizon else MID, reward)

    def observation(self) -> dict:
        return {
            "tokens": list(self.space.encodings[self.arch]),
            "action_mask": self.space.mask(self.arch),
            "features": [
                self.score[self.arch],
                max(self.score[a] for a in self.visited),
                self.t / self.horizon,
            ],
            "visited": [
                self.space.move(self.arch, a) in self.visited
                for a in range(self.space.num_actions)
            ],
        }

    def _timestep(self, step_type: int, reward: float) -> dict:
        return {
            "step_type": step_type,
            "reward": reward,
            "discount": 1.0,
            "observation": self.observation(),
            "info": {
                "arch": self.arch,
                "valid_metric": self.valid[self.arch],
                "test_metric": math.nan if self.test is None else self.test[self.arch],
                "best_valid": max(self.valid[a] for a in self.visited),
                "best_arch": self.best_arch,
                "distinct_queries": len(self.visited),
                "truncated": self.t >= self.horizon,
            },
        }
