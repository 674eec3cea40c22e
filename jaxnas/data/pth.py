"""Reads the official TransNAS-Bench-101 file (``transnas-bench_v10141024.pth``) without torch.

The file is a ``torch.save`` of a plain dict::

    {"task_list": [task, ...], "metrics_dict": {task: [metric, ...]}, "info_names": [...],
     "data": {space: {arch: {task: {"metrics": {metric: [one value per epoch]},
                                    "model_info": {...}, "total_epochs": int}}}}}

where a metric is ``train_``/``valid_``/``test_`` followed by a base metric (``top1``, ``ssim``).
Both torch layouts are read: the zip archive (torch >= 1.6) and the legacy stream of pickles.
Unpickling goes through an allowlist of builtin scalars and containers, so a file holding anything
else (tensors, arbitrary classes, a crafted payload) is rejected before any of its code can run.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import math
import pickle
import reprlib
import zipfile
from pathlib import Path
from typing import IO, Mapping, Optional, Sequence, Union

import numpy as np

from jaxnas.data import names as arch_names
from jaxnas.data.table import BenchmarkTable, table_from_numpy
from jaxnas.errors import ConfigError, DataError

OFFICIAL_FILE = "transnas-bench_v10141024.pth"
OFFICIAL_URL = "https://github.com/yawen-d/TransNASBench"

#: Base metric read for each task unless ``metrics`` says otherwise; higher is better for each.
DEFAULT_METRICS = {
    "class_object": "top1",
    "class_scene": "top1",
    "jigsaw": "top1",
    "room_layout": "neg_loss",
    "segmentsemantic": "acc",
    "normal": "ssim",
    "autoencoder": "ssim",
}
EPOCHS = ("final", "best")

#: First two pickles of a legacy (pre-zip) torch file.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_ZIP_SIGNATURE = b"PK\x03\x04"
_TOP_LEVEL_KEYS = ("task_list", "metrics_dict", "data")
_NUMBER_TYPES = {int, float}


def _latin1_encode(text, encoding="latin1"):
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(str, "latin1"); nothing else is
    # needed, so no other codec is reachable from a file.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is accepted only for latin1 text")
    return text.encode("latin1")


_SAFE_BUILTINS = (
    dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bytearray, bool
)
_ALLOWED_GLOBALS = {
    # Python 3 writes builtins under their Python 2 module name in protocol < 3 pickles.
    **{(module, t.__name__): t for module in ("builtins", "__builtin__") for t in _SAFE_BUILTINS},
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles builtin scalars and containers only; anything else raises DataError."""

    def __init__(self, stream: IO[bytes], source: str):
        # utf-8 for Python 2 strings, as torch.load decodes them.
        super().__init__(stream, encoding="utf-8")
        self._source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._source}: the file contains an object of type {module}.{name}, which this "
                "loader does not accept; it reads only plain Python data (dicts, lists, numbers, "
                "strings) as in the official TransNAS-Bench-101 file, and never runs code from "
                "a file"
            ) from None

    def persistent_load(self, pid):
        raise DataError(
            f"{self._source}: the file references a torch storage (tensor data, persistent id "
            f"{reprlib.repr(pid)}), which this loader does not accept; the official "
            "TransNAS-Bench-101 file holds plain Python numbers only"
        )


@contextlib.contextmanager
def _gc_paused():
    # Unpickling creates millions of acyclic containers; the cyclic collector would rescan them
    # again and again (most of the load time) and can free nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _unpickle(stream: IO[bytes], source: str, expected: str):
    try:
        with _gc_paused():
            return _RestrictedUnpickler(stream, source).load()
    except DataError:
        raise
    except Exception as err:  # anything the pickle machine raises means a malformed file
        raise DataError(
            f"{source}: cannot read {expected}; the file is corrupt or not a TransNAS-Bench-101 "
            f"file ({type(err).__name__}: {err})"
        ) from err


def _load_zip(path: Path, source: str):
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.namelist()
            pickles = [n for n in entries if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise DataError(
                    f"{source}: expected a torch zip archive whose top directory holds data.pkl; "
                    f"found {len(pickles)} such entries (first entries: "
                    f"{', '.join(entries[:5]) or 'none'})"
                )
            with archive.open(pickles[0]) as stream:
                return _unpickle(stream, source, f"{pickles[0]} inside the zip archive")
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as err:
        raise DataError(
            f"{source}: starts like a zip archive (torch >= 1.6 format) but cannot be read as "
            f"one; the file is corrupt or truncated ({err})"
        ) from err


def _load_legacy(path: Path, source: str):
    with open(path, "rb") as stream:
        magic = _unpickle(
            stream,
            source,
            "the file: expected a torch zip archive (torch >= 1.6) or a legacy torch file "
            "(a stream of pickles starting with the torch magic number)",
        )
        if type(magic) is not int or magic != LEGACY_MAGIC:
            raise DataError(
                f"{source}: not a torch file: it is neither a zip archive (torch >= 1.6) nor a "
                f"legacy torch file (its first pickle holds {reprlib.repr(magic)}, expected the "
                f"torch magic number {LEGACY_MAGIC:#x})"
            )
        protocol = _unpickle(stream, source, "the legacy torch protocol version")
        if protocol != LEGACY_PROTOCOL:
            raise DataError(
                f"{source}: legacy torch file with protocol version {reprlib.repr(protocol)}; "
                f"only {LEGACY_PROTOCOL} is supported"
            )
        _unpickle(stream, source, "the legacy torch system info")
        obj = _unpickle(stream, source, "the pickled object of the legacy torch file")
        storage_keys = _unpickle(stream, source, "the storage list of the legacy torch file")
        if storage_keys != []:
            raise DataError(
                f"{source}: the legacy torch file lists tensor storages "
                f"({reprlib.repr(storage_keys)}), which this loader does not accept; the official "
                "file holds plain Python numbers"
            )
        return obj


def load_pth_object(path: Union[str, Path]):
    """The Python object stored by ``torch.save`` at ``path`` (plain data only), without torch."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError(
            f"benchmark file not found: looked at {source}. Download the official "
            f"TransNAS-Bench-101 file {OFFICIAL_FILE} from the TransNAS-Bench-101 project "
            f"({OFFICIAL_URL}) and pass its path"
        )
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(_ZIP_SIGNATURE))
        if head == _ZIP_SIGNATURE:
            return _load_zip(path, source)
        return _load_legacy(path, source)
    except OSError as err:
        raise DataError(f"{source}: cannot read the file ({err})") from err


def _check_top_level(obj, source: str) -> None:
    if not isinstance(obj, dict):
        raise DataError(
            f"{source}: expected a dict with keys {', '.join(_TOP_LEVEL_KEYS)}; the file holds a "
            f"{type(obj).__name__}"
        )
    missing = [k for k in _TOP_LEVEL_KEYS if k not in obj]
    if missing:
        raise DataError(
            f"{source}: top-level keys missing: {', '.join(missing)} (a TransNAS-Bench-101 file "
            f"has {', '.join(_TOP_LEVEL_KEYS)}; keys present: {reprlib.repr(list(obj))})"
        )
    task_list = obj["task_list"]
    if not isinstance(task_list, (list, tuple)) or not all(isinstance(t, str) for t in task_list):
        raise DataError(
            f"{source}: 'task_list' must be a list of task names, got {reprlib.repr(task_list)}"
        )
    if not isinstance(obj["metrics_dict"], dict):
        raise DataError(f"{source}: 'metrics_dict' must be a dict task -> list of metric names")
    data = obj["data"]
    if not isinstance(data, dict) or not data:
        raise DataError(f"{source}: 'data' must be a non-empty dict space -> architectures")
    unknown = [s for s in data if s not in arch_names.SPACES]
    if unknown:
        raise DataError(
            f"{source}: unknown search space key {unknown[0]!r} in 'data'; expected "
            f"{' or '.join(arch_names.SPACES)}"
        )


def _select_tasks(task_list: Sequence[str], tasks, source: str) -> tuple[str, ...]:
    if tasks is None:
        return tuple(task_list)
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not tasks:
        raise ConfigError("tasks is empty; pass None for every task or a list of task names")
    unknown = [t for t in tasks if t not in task_list]
    if unknown:
        raise DataError(
            f"{source}: unknown task(s) {', '.join(map(repr, unknown))}; tasks present: "
            f"{', '.join(task_list)}"
        )
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"tasks lists a task more than once: {', '.join(tasks)}")
    return tasks


def _base_metric(task: str, metrics: Mapping[str, str], metrics_dict: dict, source: str) -> str:
    declared = metrics_dict.get(task)
    if not isinstance(declared, (list, tuple)):
        raise DataError(f"{source}: metrics_dict has no list of metrics for task {task!r}")
    valid_names = [m for m in declared if isinstance(m, str) and m.startswith("valid_")]
    if task in metrics:
        base = metrics[task]
    elif task in DEFAULT_METRICS:
        base = DEFAULT_METRICS[task]
    elif len(valid_names) == 1:
        base = valid_names[0][len("valid_"):]
    else:
        raise DataError(
            f"{source}: task {task!r} has no default metric and {len(valid_names)} validation "
            f"metrics ({', '.join(valid_names) or 'none'}); choose one with "
            f"metrics={{{task!r}: <base metric>}}"
        )
    if f"valid_{base}" not in declared:
        raise DataError(
            f"{source}: metric 'valid_{base}' of task {task!r} is not in metrics_dict[{task!r}] "
            f"(validation metrics present: {', '.join(valid_names) or 'none'}); choose one with "
            f"metrics={{{task!r}: <base metric>}}"
        )
    return base


def _curve(curves: dict, key: str, where: str) -> Optional[list]:
    """Per-epoch values of ``key``, checked numeric and finite; None when the key is absent."""
    if key not in curves:
        return None
    values = curves[key]
    if not isinstance(values, (list, tuple)) or not values:
        raise DataError(
            f"{where}, metric {key!r}: expected a non-empty list with one value per epoch, "
            f"got {reprlib.repr(values)}"
        )
    # Plain Python checks: numpy conversion per curve would dominate the load time.
    if not set(map(type, values)) <= _NUMBER_TYPES:
        epoch = next(i for i, v in enumerate(values) if type(v) not in _NUMBER_TYPES)
        raise DataError(
            f"{where}, metric {key!r}: non-numeric value {reprlib.repr(values[epoch])} at epoch "
            f"index {epoch}"
        )
    if not all(map(math.isfinite, values)):
        epoch = next(i for i, v in enumerate(values) if not math.isfinite(v))
        raise DataError(
            f"{where}, metric {key!r}: value {values[epoch]} at epoch index {epoch} is not finite"
        )
    return values


def _space_table(
    space: str,
    archs,
    tasks: tuple[str, ...],
    bases: tuple[str, ...],
    epoch: str,
    source: str,
) -> BenchmarkTable:
    if not isinstance(archs, dict):
        raise DataError(f"{source}: data[{space!r}] must be a dict architecture -> results")
    index = arch_names.name_to_index(space)
    for name in archs:
        if name not in index:
            other = arch_names.detect_space(name) if isinstance(name, str) else None
            hint = f" (it is a {other} architecture)" if other else ""
            raise DataError(
                f"{source}: data[{space!r}] holds {name!r}, which is not an architecture of the "
                f"{space} space{hint}"
            )
    all_names = arch_names.all_names(space)
    if len(archs) != len(all_names):
        missing = [n for n in all_names if n not in archs]
        raise DataError(
            f"{source}: {len(missing)} of the {len(all_names)} architectures of the {space} space "
            f"are missing, e.g. {', '.join(missing[:5])}"
        )

    valid = np.empty((len(tasks), len(all_names)), np.float64)
    test: Optional[np.ndarray] = np.empty_like(valid)
    for t, (task, base) in enumerate(zip(tasks, bases)):
        with_test, without_test = [], []
        for name, results in archs.items():
            where = f"{source}: architecture {name!r} ({space} space), task {task!r}"
            if not isinstance(results, dict):
                raise DataError(
                    f"{where}: expected a dict task -> results, got {reprlib.repr(results)}"
                )
            entry = results.get(task)
            if entry is None:
                raise DataError(f"{where}: task missing for this architecture")
            curves = entry.get("metrics") if isinstance(entry, dict) else None
            if not isinstance(curves, dict):
                raise DataError(f"{where}: expected a dict with a 'metrics' dict")
            valid_curve = _curve(curves, f"valid_{base}", where)
            if valid_curve is None:
                raise DataError(
                    f"{where}: metric 'valid_{base}' missing (metrics present: "
                    f"{', '.join(map(str, curves))})"
                )
            # Best = first epoch with the highest validation value, as the official API picks it.
            e = len(valid_curve) - 1 if epoch == "final" else valid_curve.index(max(valid_curve))
            row = index[name]
            valid[t, row] = valid_curve[e]
            test_curve = _curve(curves, f"test_{base}", where)
            (without_test if test_curve is None else with_test).append(name)
            if test_curve is not None and test is not None:
                if len(test_curve) != len(valid_curve):
                    raise DataError(
                        f"{where}: 'test_{base}' has {len(test_curve)} epochs but 'valid_{base}' "
                        f"has {len(valid_curve)}"
                    )
                test[t, row] = test_curve[e]
        if with_test and without_test:
            raise DataError(
                f"{source}: metric 'test_{base}' of task {task!r} is missing for architecture "
                f"{without_test[0]!r} ({space} space) but present for {len(with_test)} others, "
                f"e.g. {with_test[0]!r}"
            )
        if without_test:
            # A table has test values for all its tasks or none; never fake the missing ones.
            test = None
    return table_from_numpy(space, tasks, valid, test, source=source)


def read_pth(
    path: Union[str, Path],
    *,
    tasks: Optional[Sequence[str]] = None,
    epoch: str = "final",
    metrics: Optional[Mapping[str, str]] = None,
) -> dict[str, BenchmarkTable]:
    """One :class:`BenchmarkTable` per search space of the official ``.pth`` file, without torch.

    tasks: task names to load, in this order; None loads every task of the file's ``task_list``.
    epoch: ``"final"`` reads the last epoch; ``"best"`` the epoch with the highest validation
        value, and the test value of that same epoch.
    metrics: base metric per task (e.g. ``{"segmentsemantic": "mIoU"}``) overriding
        :data:`DEFAULT_METRICS`; validation reads ``valid_<metric>``, test ``test_<metric>``.

    A table's ``test`` is None when a selected task has no ``test_<metric>`` for any architecture
    of the space. Every inconsistency raises :class:`DataError` naming the file and the entry.
    """
    if epoch not in EPOCHS:
        raise ConfigError(f"epoch must be one of {', '.join(map(repr, EPOCHS))}, got {epoch!r}")
    metrics = dict(metrics or {})
    for task, base in metrics.items():
        if not isinstance(base, str):
            raise ConfigError(f"metrics[{task!r}] must be a base metric name, got {base!r}")
    obj = load_pth_object(path)
    source = str(path)
    _check_top_level(obj, source)
    task_list = tuple(obj["task_list"])
    selected = _select_tasks(task_list, tasks, source)
    unknown = [t for t in metrics if t not in task_list]
    if unknown:
        raise DataError(
            f"{source}: metrics names unknown task(s) {', '.join(map(repr, unknown))}; tasks "
            f"present: {', '.join(task_list)}"
        )
    bases = tuple(_base_metric(t, metrics, obj["metrics_dict"], source) for t in selected)
    return {
        space: _space_table(space, archs, selected, bases, epoch, source)
        for space, archs in obj["data"].items()
    }
