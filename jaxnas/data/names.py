"""Architecture names of TransNAS-Bench-101 and their integer encodings.

micro: ``64-41414-{e0}_{e1}{e2}_{e3}{e4}{e5}``, one op per cell edge (0 none, 1 skip, 2 conv1x1,
3 conv3x3); the encoding is the six digits.
macro: ``64-{code}-basic`` with 4..6 modules in {1,2,3,4}; the encoding is the code padded on the
right to six slots with 0 (= empty slot). A code is valid when it has 4..6 modules, 1..4 of them
in {3,4} (downsampling) and 1..3 in {2,4} (channel doubling).

The canonical order of a space (index 0..N-1) is the lexicographic order of the encodings; it is
the same whichever file the table came from.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

import numpy as np

SPACES = ("micro", "macro")
ENCODING_LENGTH = 6
#: Number of values a position of the encoding can take (micro: ops; macro: empty + 4 modules).
NUM_VALUES = {"micro": 4, "macro": 5}

# fullmatch, not match: "$" would also accept a trailing newline.
_MICRO_RE = re.compile(r"64-41414-([0-3])_([0-3]{2})_([0-3]{3})")
_MACRO_RE = re.compile(r"64-([1-4]{4,6})-basic")


def macro_code_is_valid(code: tuple[int, ...]) -> bool:
    modules = [c for c in code if c != 0]
    # Empty slots only at the end: the padded encoding is canonical.
    if list(code[: len(modules)]) != modules:
        return False
    if not 4 <= len(modules) <= 6:
        return False
    downsample = sum(m in (3, 4) for m in modules)
    double = sum(m in (2, 4) for m in modules)
    return 1 <= downsample <= 4 and 1 <= double <= 3


def encode(space: str, name: str) -> tuple[int, ...] | None:
    """The encoding of ``name`` in ``space``, or None if it is not an architecture of the space."""
    if space == "micro":
        m = _MICRO_RE.fullmatch(name)
        if not m:
            return None
        return tuple(int(c) for c in "".join(m.groups()))
    if space == "macro":
        m = _MACRO_RE.fullmatch(name)
        if not m:
            return None
        digits = [int(c) for c in m.group(1)]
        code = tuple(digits + [0] * (ENCODING_LENGTH - len(digits)))
        return code if macro_code_is_valid(code) else None
    raise ValueError(f"unknown search space {space!r}; expected one of {SPACES}")


def decode(space: str, code) -> str:
    digits = [int(c) for c in code]
    if space == "micro":
        d = "".join(str(c) for c in digits)
        return f"64-41414-{d[0]}_{d[1:3]}_{d[3:6]}"
    if space == "macro":
        return "64-" + "".join(str(c) for c in digits if c != 0) + "-basic"
    raise ValueError(f"unknown search space {space!r}; expected one of {SPACES}")


@lru_cache(maxsize=None)
def all_encodings(space: str) -> np.ndarray:
    """Every architecture of ``space`` in canonical order, int32 [N, 6]."""
    if space == "micro":
        codes = list(itertools.product(range(4), repeat=ENCODING_LENGTH))
    elif space == "macro":
        codes = [
            c for c in itertools.product(range(5), repeat=ENCODING_LENGTH) if macro_code_is_valid(c)
        ]
    else:
        raise ValueError(f"unknown search space {space!r}; expected one of {SPACES}")
    out = np.asarray(sorted(codes), dtype=np.int32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=None)
def all_names(space: str) -> tuple[str, ...]:
    return tuple(decode(space, c) for c in all_encodings(space))


@lru_cache(maxsize=None)
def name_to_index(space: str) -> dict[str, int]:
    return {n: i for i, n in enumerate(all_names(space))}


def detect_space(name: str) -> str | None:
    for space in SPACES:
        if encode(space, name) is not None:
            return space
    return None
