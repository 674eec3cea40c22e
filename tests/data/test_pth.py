"""Tests of the torch-free reader of the official TransNAS-Bench-101 file."""

from __future__ import annotations

import collections
import datetime
import gc
import io
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pth_factory as factory
from jaxnas.data import names
from jaxnas.data.pth import OFFICIAL_FILE, OFFICIAL_URL, load_pth_object, read_pth
from jaxnas.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The default base metric per task, as the official benchmark defines it.
DEFAULT_BASE = {
    "class_object": "top1",
    "class_scene": "top1",
    "jigsaw": "top1",
    "room_layout": "neg_loss",
    "segmentsemantic": "acc",
    "normal": "ssim",
    "autoencoder": "ssim",
}
TASKS = ("class_object", "room_layout", "segmentsemantic", "normal")
NAMED = {
    "micro": ("64-41414-0_00_000", "64-41414-3_12_021", "64-41414-3_33_333"),
    "macro": ("64-4111-basic", "64-1234-basic", "64-441111-basic"),
}
ARCH = "64-1234-basic"  # a macro architecture the error tests break
MACRO = names.all_names("macro")


def _metrics(obj, space, name, task):
    return obj["data"][space][name][task]["metrics"]


def _expected(obj, space, task, base, epoch, split):
    """Independent reference: the value the official API reports, in canonical row order."""
    out = []
    for name in names.all_names(space):
        curves = _metrics(obj, space, name, task)
        valid = curves[f"valid_{base}"]
        e = len(valid) - 1 if epoch == "final" else valid.index(max(valid))
        out.append(curves[f"{split}_{base}"][e])
    return np.asarray(out, np.float32)


def _assert_table(table, obj, epoch="final", bases=None):
    """Every value of ``table`` equals the reference, for valid and test."""
    bases = bases or {}
    for task in table.tasks:
        base = bases.get(task, DEFAULT_BASE[task])
        for split, got in (("valid", table.valid_of(task)), ("test", table.test_of(task))):
            want = _expected(obj, table.space, task, base, epoch, split)
            np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"{task} {split}")


def _small(tasks=("class_object",), **kwargs):
    return factory.official_dict(spaces=("macro",), tasks=tasks, epochs=3, **kwargs)


def _read_error(tmp_path, obj, **kwargs) -> str:
    path = factory.write_zip(tmp_path / "bench.pth", obj)
    with pytest.raises(DataError) as info:
        read_pth(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    return message


@pytest.fixture(scope="module")
def official():
    obj = factory.official_dict(tasks=TASKS, epochs=5)
    # Keeps the collector from rescanning this large dict during every later test.
    gc.freeze()
    yield obj
    gc.unfreeze()


@pytest.fixture(scope="module")
def zip_path(official, tmp_path_factory):
    # The official file's top directory is named after the file, not "archive".
    path = tmp_path_factory.mktemp("zip") / OFFICIAL_FILE
    return factory.write_zip(path, official, dirname="transnas-bench_v10141024")


@pytest.fixture(scope="module")
def final_tables(zip_path):
    return read_pth(zip_path)


@pytest.fixture(scope="module")
def best_tables(zip_path):
    return read_pth(zip_path, epoch="best")


# ----------------------------------------------------------------------------- values


def test_named_architectures_exist():
    for space, arch_list in NAMED.items():
        assert set(arch_list) <= set(names.all_names(space))
    assert ARCH in MACRO


@pytest.mark.parametrize("epoch", ["final", "best"])
def test_round_trip_values(official, final_tables, best_tables, zip_path, epoch):
    tables = final_tables if epoch == "final" else best_tables
    assert list(tables) == ["micro", "macro"]
    for space, table in tables.items():
        assert table.space == space and table.tasks == TASKS
        assert table.source == str(zip_path)
        assert table.valid.shape == table.test.shape == (len(TASKS), len(names.all_names(space)))
        for task in TASKS:
            base = DEFAULT_BASE[task]
            for name in NAMED[space]:
                curves = _metrics(official, space, name, task)
                valid = curves[f"valid_{base}"]
                e = len(valid) - 1 if epoch == "final" else valid.index(max(valid))
                row = table.index(name)
                assert float(table.valid_of(task)[row]) == np.float32(valid[e])
                assert float(table.test_of(task)[row]) == np.float32(curves[f"test_{base}"][e])
        _assert_table(table, official, epoch)


def test_best_epoch_differs_from_final_and_takes_test_from_that_epoch(
    official, final_tables, best_tables
):
    for space in ("micro", "macro"):
        arch_list = names.all_names(space)
        best, final = np.asarray(best_tables[space].valid), np.asarray(final_tables[space].valid)
        assert np.all(best >= final) and np.mean(best > final) > 0.5
        # The test value comes from the best validation epoch, not the best test epoch.
        best_test = np.asarray(
            [
                [max(_metrics(official, space, n, t)[f"test_{DEFAULT_BASE[t]}"]) for n in arch_list]
                for t in TASKS
            ],
            np.float32,
        )
        assert np.mean(np.asarray(best_tables[space].test) < best_test) > 0.5


def test_best_epoch_ties_pick_the_first(tmp_path):
    obj = _small()
    curves = _metrics(obj, "macro", ARCH, "class_object")
    curves["valid_top1"] = [0.5, 0.9, 0.9]
    curves["test_top1"] = [1.0, 2.0, 3.0]
    table = read_pth(factory.write_zip(tmp_path / "b.pth", obj), epoch="best")["macro"]
    assert float(table.valid_of("class_object")[table.index(ARCH)]) == np.float32(0.9)
    assert float(table.test_of("class_object")[table.index(ARCH)]) == 2.0


def test_legacy_layout_reads_like_zip(official, final_tables, tmp_path):
    tables = read_pth(factory.write_legacy(tmp_path / "legacy.pth", official))
    assert list(tables) == list(final_tables)
    for space, table in tables.items():
        want = final_tables[space]
        assert table.tasks == want.tasks
        np.testing.assert_array_equal(np.asarray(table.valid), np.asarray(want.valid))
        np.testing.assert_array_equal(np.asarray(table.test), np.asarray(want.test))


def test_all_official_tasks_and_subset_in_requested_order(tmp_path):
    obj = _small(tasks=tuple(DEFAULT_BASE))
    path = factory.write_zip(tmp_path / "b.pth", obj)
    table = read_pth(path)["macro"]
    assert table.tasks == tuple(DEFAULT_BASE)
    _assert_table(table, obj)
    subset = read_pth(path, tasks=["normal", "class_object"], epoch="best")["macro"]
    assert subset.tasks == ("normal", "class_object")
    _assert_table(subset, obj, "best")
    assert read_pth(path, tasks="jigsaw")["macro"].tasks == ("jigsaw",)


def test_custom_metric(tmp_path):
    obj = _small(tasks=("class_object", "segmentsemantic"))
    path = factory.write_zip(tmp_path / "b.pth", obj)
    table = read_pth(path, metrics={"segmentsemantic": "mIoU"})["macro"]
    _assert_table(table, obj, bases={"segmentsemantic": "mIoU"})
    acc = _expected(obj, "macro", "segmentsemantic", "acc", "final", "valid")
    assert not np.array_equal(np.asarray(table.valid_of("segmentsemantic")), acc)


def test_task_without_default_metric(tmp_path):
    obj = _small()
    obj["task_list"].append("depth")
    obj["metrics_dict"]["depth"] = ["train_l1", "valid_l1", "test_l1", "train_loss"]
    for i, name in enumerate(MACRO):
        curves = {"train_l1": [0.0], "valid_l1": [i / 10], "test_l1": [i / 20], "train_loss": [1.0]}
        obj["data"]["macro"][name]["depth"] = {"metrics": curves}
    table = read_pth(factory.write_zip(tmp_path / "b.pth", obj))["macro"]
    assert table.tasks == ("class_object", "depth")
    want = np.arange(len(MACRO), dtype=np.float32) / np.float32(10)
    np.testing.assert_array_equal(np.asarray(table.valid_of("depth")), want)

    obj["metrics_dict"]["depth"].append("valid_l2")
    message = _read_error(tmp_path, obj)
    assert "'depth'" in message and "valid_l1, valid_l2" in message and "metrics=" in message


def test_no_test_metrics_gives_test_none(tmp_path):
    obj = _small(with_test=False)
    table = read_pth(factory.write_zip(tmp_path / "b.pth", obj), epoch="best")["macro"]
    assert table.test is None and not table.has_test
    want = _expected(obj, "macro", "class_object", "top1", "best", "valid")
    np.testing.assert_array_equal(np.asarray(table.valid_of("class_object")), want)


def test_one_task_without_test_metrics_gives_test_none(tmp_path):
    obj = _small(tasks=("class_object", "segmentsemantic"))
    for name in MACRO:
        del _metrics(obj, "macro", name, "segmentsemantic")["test_acc"]
    path = factory.write_zip(tmp_path / "b.pth", obj)
    assert read_pth(path)["macro"].test is None
    # A table has test values for all its tasks or none; alone, class_object has them.
    assert read_pth(path, tasks=["class_object"])["macro"].has_test


def test_unused_entries_are_not_checked(tmp_path):
    obj = _small()
    curves = _metrics(obj, "macro", ARCH, "class_object")
    curves["train_top1"][0] = float("nan")
    curves["time_elapsed"] = "n/a"
    del obj["info_names"]
    assert read_pth(factory.write_zip(tmp_path / "b.pth", obj))["macro"].num_archs == len(MACRO)


# ----------------------------------------------------------------------------- torch


def test_reader_does_not_need_torch(tmp_path):
    path = factory.write_zip(tmp_path / "b.pth", _small())
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        from jaxnas.data.pth import read_pth
        tables = read_pth({str(path)!r}, epoch="best")
        assert sys.modules["torch"] is None
        print("spaces", sorted(tables))
        """
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "spaces ['macro']" in done.stdout
    assert "import torch" not in (REPO_ROOT / "jaxnas" / "data" / "pth.py").read_text()


def test_files_written_by_torch_read_the_same(tmp_path):
    torch = pytest.importorskip("torch")
    obj = _small()
    want = read_pth(factory.write_zip(tmp_path / "ours.pth", obj))["macro"]
    assert torch.load(tmp_path / "ours.pth", weights_only=True) == obj
    for legacy in (False, True):
        path = tmp_path / f"torch_{legacy}.pth"
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
        got = read_pth(path)["macro"]
        np.testing.assert_array_equal(np.asarray(got.valid), np.asarray(want.valid))
        np.testing.assert_array_equal(np.asarray(got.test), np.asarray(want.test))


# ----------------------------------------------------------------------------- file format errors


def test_missing_file_says_where_to_download(tmp_path):
    path = tmp_path / "nowhere" / OFFICIAL_FILE
    with pytest.raises(DataError) as info:
        read_pth(path)
    message = str(info.value)
    assert str(path) in message and OFFICIAL_URL in message and OFFICIAL_FILE in message


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"task,arch,valid\nclass_object,64-1234-basic,0.5\n", "expected a torch zip archive"),
        (b"PK\x03\x04 truncated zip", "cannot be read as one"),
        (b"", "expected a torch zip archive"),
        (pickle.dumps({"task_list": []}, protocol=2), "first pickle holds.*magic number"),
    ],
    ids=["text", "broken-zip", "empty", "plain-pickle"],
)
def test_not_a_torch_file(tmp_path, content, expected):
    path = tmp_path / "bench.pth"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as info:
        read_pth(path)
    assert str(path) in str(info.value)


def test_zip_without_or_with_two_data_pkl(tmp_path):
    path = tmp_path / "bench.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3\n")
    with pytest.raises(DataError, match="found 0 such entries.*archive/version"):
        read_pth(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/data.pkl", pickle.dumps({}, protocol=2))
        archive.writestr("b/data.pkl", pickle.dumps({}, protocol=2))
    with pytest.raises(DataError, match="found 2 such entries"):
        read_pth(path)


def test_truncated_files_are_corrupt(tmp_path):
    obj = _small()
    payload = pickle.dumps(obj, protocol=2)
    path = factory.write_zip_payload(tmp_path / "zip.pth", payload[: len(payload) // 2])
    with pytest.raises(DataError, match="archive/data.pkl.*corrupt"):
        read_pth(path)
    legacy = factory.write_legacy(tmp_path / "legacy.pth", obj)
    legacy.write_bytes(legacy.read_bytes()[: len(payload) // 2])
    with pytest.raises(DataError, match="corrupt"):
        read_pth(legacy)


def test_damaged_zip_entries_are_corrupt(tmp_path):
    path = tmp_path / "bench.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/data.pkl", pickle.dumps(_small(), protocol=2))
    raw = path.read_bytes()
    second_header = raw.index(b"PK\x03\x04", 4)
    path.write_bytes(raw[:second_header] + b"XXXX" + raw[second_header + 4 :])
    with pytest.raises(DataError, match="cannot be read as one.*header"):
        read_pth(path)
    middle = second_header + len(raw[second_header:]) // 2
    path.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1 :])
    with pytest.raises(DataError, match="corrupt"):
        read_pth(path)


def test_legacy_protocol_and_storages_are_checked(tmp_path):
    obj = _small()
    path = factory.write_legacy(tmp_path / "legacy.pth", obj, protocol=1000)
    with pytest.raises(DataError, match="protocol version 1000"):
        read_pth(path)
    path = factory.write_legacy(tmp_path / "legacy.pth", obj, storage_keys=["0"])
    with pytest.raises(DataError, match="tensor storages"):
        read_pth(path)


class _Storage:
    """Stands for a tensor storage, which torch pickles by persistent id."""


class _TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", "FloatStorage", "0", "cpu", 4)
        return None


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_tensor_storages_are_rejected(tmp_path, layout):
    obj = _small()
    _metrics(obj, "macro", ARCH, "class_object")["valid_top1"] = _Storage()
    buffer = io.BytesIO()
    _TorchLikePickler(buffer, protocol=2).dump(obj)
    path = tmp_path / "bench.pth"
    write = factory.write_zip_payload if layout == "zip" else factory.write_legacy_payload
    write(path, buffer.getvalue())
    with pytest.raises(DataError, match="torch storage.*FloatStorage") as info:
        read_pth(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "payload, what",
    [
        (b"cos\nsystem\n(S'touch {marker}'\ntR.", "os.system"),
        (b"cposix\nsystem\n(S'touch {marker}'\ntR.", "posix.system"),
        (b"cbuiltins\nexec\n(S'open(r\"{marker}\", \"w\")'\ntR.", "builtins.exec"),
        (b"c__builtin__\neval\n(S'open(r\"{marker}\", \"w\")'\ntR.", "__builtin__.eval"),
        (b"cbuiltins\ngetattr\n(cbuiltins\ndict\nS'fromkeys'\ntR.", "builtins.getattr"),
    ],
    ids=["os.system", "posix.system", "exec", "eval", "getattr"],
)
@pytest.mark.parametrize("layout", ["zip", "plain"])
def test_malicious_pickle_is_rejected_without_running(tmp_path, payload, what, layout):
    marker = tmp_path / "pwned"
    payload = payload.replace(b"{marker}", str(marker).encode())
    path = tmp_path / "bench.pth"
    if layout == "zip":
        factory.write_zip_payload(path, payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(DataError, match="does not accept") as info:
        load_pth_object(path)
    assert what in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "value, what",
    [
        (np.float64(0.5), "numpy"),
        (collections.Counter(a=1), "collections.Counter"),
        (datetime.date(2021, 1, 1), "datetime.date"),
    ],
    ids=["numpy", "Counter", "date"],
)
def test_other_objects_are_rejected(tmp_path, value, what):
    obj = _small()
    _metrics(obj, "macro", ARCH, "class_object")["valid_top1"][0] = value
    with pytest.raises(DataError, match="does not accept") as info:
        read_pth(factory.write_legacy(tmp_path / "bench.pth", obj))
    assert what in str(info.value)


def test_codecs_only_for_latin1_bytes(tmp_path):
    payload = b"c_codecs\nencode\n(S'abc'\nS'rot13'\ntR."
    path = factory.write_zip_payload(tmp_path / "b.pth", payload)
    with pytest.raises(DataError, match="corrupt.*latin1"):
        load_pth_object(path)


def test_harmless_containers_are_accepted(tmp_path):
    obj = _small()
    obj["data"] = collections.OrderedDict(obj["data"])
    obj["data"]["macro"][ARCH]["class_object"]["model_info"].update(
        ordered=collections.OrderedDict(a=1, b=[2.0]),
        default=collections.defaultdict(list, {"x": [1]}),
        set={1, 2},
        frozen=frozenset({"a"}),
        bytes=b"\x00\xffraw",
        empty=b"",
        array=bytearray(b"xy"),
        complex=1 + 2j,
        big=10**40,
        flags=(True, False, None),
    )
    zip_path = factory.write_zip(tmp_path / "z.pth", obj)
    legacy_path = factory.write_legacy(tmp_path / "l.pth", obj)
    for path in (zip_path, legacy_path):
        assert load_pth_object(path) == obj
        assert read_pth(path)["macro"].num_archs == len(MACRO)


# ----------------------------------------------------------------------------- content errors


def _drop(*keys):
    def mutate(obj):
        for key in keys:
            del obj[key]

    return mutate


def _arch(mutate_entry):
    def mutate(obj):
        mutate_entry(obj["data"]["macro"][ARCH])

    return mutate


def _curves(mutate_curves):
    return _arch(lambda entry: mutate_curves(entry["class_object"]["metrics"]))


def _set_value(key, epoch, value):
    return _curves(lambda curves: curves[key].__setitem__(epoch, value))


def _rename(new):
    def mutate(obj):
        obj["data"]["macro"][new] = obj["data"]["macro"].pop(ARCH)

    return mutate


_CONTENT_ERRORS = {
    "top-level": (_drop("metrics_dict", "data"), ["top-level keys missing: metrics_dict, data"]),
    "not-dict": (lambda obj: obj.clear() or obj.update(x=1), ["top-level keys missing"]),
    "no-space": (lambda obj: obj.__setitem__("data", {}), ["non-empty dict"]),
    "space": (lambda obj: obj["data"].__setitem__("nano", {}), ["unknown search space key 'nano'"]),
    "space-not-dict": (lambda obj: obj["data"].__setitem__("macro", [1]), ["data['macro'] must"]),
    "task-list": (lambda obj: obj.__setitem__("task_list", "x"), ["'task_list' must be a list"]),
    "metrics-dict": (
        lambda obj: obj["metrics_dict"].pop("class_object"),
        ["metrics_dict has no list of metrics for task 'class_object'"],
    ),
    "other-space-name": (
        _rename("64-41414-0_00_000"),
        ["'64-41414-0_00_000'", "macro space", "it is a micro architecture"],
    ),
    "bad-name": (_rename("resnet50"), ["'resnet50'", "not an architecture of the macro space"]),
    "arch-not-dict": (
        lambda obj: obj["data"]["macro"].__setitem__(ARCH, [0.5]),
        [ARCH, "expected a dict task -> results"],
    ),
    "task": (_arch(lambda e: e.pop("class_object")), [ARCH, "'class_object'", "task missing"]),
    "no-metrics": (
        _arch(lambda e: e.__setitem__("class_object", {"model_info": {}})),
        [ARCH, "'metrics' dict"],
    ),
    "metric": (
        _curves(lambda c: c.pop("valid_top1")),
        [ARCH, "'class_object'", "'valid_top1' missing"],
    ),
    "empty": (
        _curves(lambda c: c.__setitem__("valid_top1", [])),
        [ARCH, "'valid_top1'", "expected a non-empty list"],
    ),
    "not-list": (
        _curves(lambda c: c.__setitem__("test_top1", 0.5)),
        [ARCH, "'test_top1'", "expected a non-empty list"],
    ),
    "nan": (
        _set_value("valid_top1", 1, float("nan")),
        [ARCH, "'class_object'", "'valid_top1'", "epoch index 1", "not finite"],
    ),
    "inf": (
        _set_value("test_top1", 2, float("inf")),
        [ARCH, "'class_object'", "'test_top1'", "epoch index 2", "not finite"],
    ),
    "string": (
        _set_value("valid_top1", 0, "0.5"),
        [ARCH, "'valid_top1'", "non-numeric value '0.5' at epoch index 0"],
    ),
    "none": (
        _set_value("valid_top1", 2, None),
        [ARCH, "'valid_top1'", "non-numeric value None at epoch index 2"],
    ),
    "lengths": (
        _curves(lambda c: c.__setitem__("test_top1", [0.1, 0.2])),
        [ARCH, "'test_top1' has 2 epochs but 'valid_top1' has 3"],
    ),
    "partial-test": (
        _curves(lambda c: c.pop("test_top1")),
        [ARCH, "'test_top1'", "missing for architecture", f"present for {len(MACRO) - 1} others"],
    ),
}


@pytest.mark.parametrize("case", list(_CONTENT_ERRORS))
def test_content_errors_name_the_entry(tmp_path, case):
    mutate, expected = _CONTENT_ERRORS[case]
    obj = _small()
    mutate(obj)
    message = _read_error(tmp_path, obj)
    for part in expected:
        assert part in message


def test_missing_architectures_are_counted_and_named(tmp_path):
    obj = _small()
    for name in MACRO[10:17]:
        del obj["data"]["macro"][name]
    message = _read_error(tmp_path, obj)
    assert f"7 of the {len(MACRO)} architectures of the macro space" in message
    assert ", ".join(MACRO[10:15]) in message and MACRO[15] not in message


def test_file_holding_a_list_is_rejected(tmp_path):
    assert "expected a dict with keys task_list" in _read_error(tmp_path, [1, 2])


def test_argument_errors(tmp_path):
    path = factory.write_zip(tmp_path / "b.pth", _small(tasks=("class_object", "segmentsemantic")))
    present = "tasks present: class_object, segmentsemantic"
    with pytest.raises(DataError, match=f"unknown task\\(s\\) 'jigsaw'; {present}"):
        read_pth(path, tasks=["class_object", "jigsaw"])
    with pytest.raises(DataError, match=f"metrics names unknown task\\(s\\) 'jigsaw'; {present}"):
        read_pth(path, metrics={"jigsaw": "top1"})
    with pytest.raises(DataError, match="'valid_top5'.*'class_object'.*valid_top1"):
        read_pth(path, metrics={"class_object": "top5"})
    for epoch in ("last", 3, None):
        with pytest.raises(ConfigError, match="epoch"):
            read_pth(path, epoch=epoch)
    with pytest.raises(ConfigError, match="empty"):
        read_pth(path, tasks=[])
    with pytest.raises(ConfigError, match="more than once"):
        read_pth(path, tasks=["class_object", "class_object"])
    with pytest.raises(ConfigError, match="base metric name"):
        read_pth(path, metrics={"class_object": 1})
