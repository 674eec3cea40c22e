"""Shared fixtures: the real TransNAS-Bench-101 tables and an isolated cache directory."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests train tiny agents for a few steps, where XLA's compile time dominates: compiling without
# backend optimisations is ~6x faster to compile and fast enough to run. Set before jax starts.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

#: The read-only shared data folder beside the repository (never copied into it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "transnas-bench-101"

_SESSION_CACHE: str | None = None


def pytest_configure(config):
    # Set before any test (or fixture) imports the loader, so nothing ever writes to ~/.cache.
    global _SESSION_CACHE
    _SESSION_CACHE = tempfile.mkdtemp(prefix="jaxnas-test-cache-")
    os.environ["JAXNAS_CACHE_DIR"] = _SESSION_CACHE
    # Command-line tests run in subprocesses; a shared XLA cache lets them reuse compilations.
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(_SESSION_CACHE, "xla"))


def pytest_unconfigure(config):
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not (SHARED_DATA / "micro.csv").is_file() or not (SHARED_DATA / "macro.csv").is_file():
        # A missing data folder is a broken checkout, not a reason to pass quietly.
        pytest.fail(f"the shared TransNAS-Bench-101 tables are not at {SHARED_DATA}")
    return SHARED_DATA


def read_raw_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file, read with the standard library only."""
    with Path(path).open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="session")
def raw_csv(shared_data_dir):
    """``{space: (header, rows)}`` of the shared CSVs, as text."""
    return {space: read_raw_csv(shared_data_dir / f"{space}.csv") for space in ("micro", "macro")}


@pytest.fixture(scope="session")
def tables(shared_data_dir):
    """``{space: BenchmarkTable}`` loaded once per session from the shared folder."""
    from jaxnas.data import load_table

    return {space: load_table(space, data=shared_data_dir) for space in ("micro", "macro")}


@pytest.fixture(scope="session")
def micro_table(tables):
    return tables["micro"]


@pytest.fixture(scope="session")
def macro_table(tables):
    return tables["macro"]
