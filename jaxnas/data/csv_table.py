"""Reading benchmark tables from CSV files.

Layout: a header row whose first column is ``arch``, then one column per task holding the
validation metric. An optional column ``test:<task>`` holds the test metric of that task. Rows may
come in any order; they are returned in the space's canonical order. The space is detected from
the architecture names.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from jaxnas.data import names as arch_names
from jaxnas.data.table import BenchmarkTable, table_from_numpy
from jaxnas.errors import DataError

TEST_PREFIX = "test:"


def _parse_float(path: Path, line: int, column: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(
            f"{path}, line {line}, column {column!r}: {cell!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise DataError(
            f"{path}, line {line}, column {column!r}: {cell!r} is not a finite number; "
            "every architecture needs a finite metric for every task"
        )
    return value


def read_csv(path, *, tasks: Optional[Sequence[str]] = None) -> BenchmarkTable:
    """Reads one search space's table from ``path``.

    ``tasks``: the task columns to keep (default: all, in file order).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # tolerate a BOM (Excel)
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header 'arch,<task>,...'")
    header = [h.strip() for h in rows[0]]
    if not header or header[0] != "arch":
        raise DataError(
            f"{path}, line 1: the first column must be 'arch', found {header[:1]}; "
            "expected a header 'arch,<task>,<task>,...'"
        )
    columns = header[1:]
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"{path}, line 1: duplicate column(s) {dup}")
    if any(not c for c in columns):
        raise DataError(f"{path}, line 1: empty column name in the header")
    valid_cols = [c for c in columns if not c.startswith(TEST_PREFIX)]
    test_cols = [c[len(TEST_PREFIX):] for c in columns if c.startswith(TEST_PREFIX)]
    if not valid_cols:
        raise DataError(f"{path}, line 1: no task columns after 'arch'")
    orphan = [t for t in test_cols if t not in valid_cols]
    if orphan:
        raise DataError(
            f"{path}, line 1: test column(s) {[TEST_PREFIX + t for t in orphan]} have no "
            "matching validation column"
        )
    if tasks is None:
        tasks = valid_cols
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in valid_cols]
    if unknown:
        raise DataError(
            f"{path}: unknown task(s) {unknown}; tasks present: {', '.join(valid_cols)}"
        )
    has_test = bool(test_cols)
    if has_test and set(test_cols) != set(valid_cols):
        missing = [t for t in valid_cols if t not in test_cols]
        raise DataError(
            f"{path}, line 1: test columns are given for some tasks but not for {missing}; "
            f"add '{TEST_PREFIX}<task>' for every task or none"
        )

    body = [(i + 2, r) for i, r in enumerate(rows[1:]) if any(cell.strip() for cell in r)]
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    space = arch_names.detect_space(body[0][1][0].strip())
    if space is None:
        raise DataError(
            f"{path}, line {body[0][0]}: {body[0][1][0]!r} is not a TransNAS-Bench-101 micro "
            "('64-41414-d_dd_ddd') or macro ('64-<4..6 digits in 1-4>-basic') architecture name"
        )
    index = arch_names.name_to_index(space)
    n = len(index)
    col_of = {c: j + 1 for j, c in enumerate(columns)}
    valid = np.full((len(tasks), n), np.nan, np.float32)
    test = np.full((len(tasks), n), np.nan, np.float32) if has_test else None
    seen_at: dict[int, int] = {}
    for line, row in body:
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, the header has {len(header)}"
            )
        name = row[0].strip()
        i = index.get(name)
        if i is None:
            other = arch_names.detect_space(name)
            hint = (
                f"it is a {other} architecture, but this file's first row is {space}"
                if other
                else f"not a valid {space} architecture name"
            )
            raise DataError(f"{path}, line {line}: unknown architecture {name!r} ({hint})")
        if i in seen_at:
            raise DataError(
                f"{path}, line {line}: duplicate row for {name!r} (first seen on line "
                f"{seen_at[i]}); keep one row per architecture"
            )
        seen_at[i] = line
        for k, task in enumerate(tasks):
            valid[k, i] = _parse_float(path, line, task, row[col_of[task]])
            if test is not None:
                col = TEST_PREFIX + task
                test[k, i] = _parse_float(path, line, col, row[col_of[col]])
    if len(seen_at) != n:
        missing = [arch_names.all_names(space)[i] for i in range(n) if i not in seen_at]
        raise DataError(
            f"{path}: {len(missing)} of the {n} {space} architectures have no row, e.g. "
            f"{', '.join(missing[:5])}; the table must cover the whole search space"
        )
    return table_from_numpy(space, tasks, valid, test, source=str(path))
