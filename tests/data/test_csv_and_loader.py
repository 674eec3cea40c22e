"""Reading CSV tables, finding the data, caching conversions, and every loader error."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import jaxnas.data.loader as loader
from jaxnas.data import load_table, resolve_data_file, table_from_numpy
from jaxnas.data import names as arch_names
from jaxnas.data.csv_table import read_csv
from jaxnas.errors import ConfigError, DataError, JaxnasError

OFFICIAL_TASKS = ("class_object", "room_layout", "autoencoder", "segmentsemantic")


# -- helpers -------------------------------------------------------------------------------------
def fake_values(space: str, seed: int) -> np.ndarray:
    """Float32 metrics, one per architecture in canonical order, all distinct."""
    rng = np.random.default_rng(seed)
    n = len(arch_names.all_names(space))
    return (rng.permutation(n) + rng.uniform(0.0, 0.5, n)).astype(np.float32)


def fmt(v) -> str:
    return repr(float(np.float32(v)))  # exact for float32


def space_lines(space: str, columns: dict, *, order=None) -> list[str]:
    """CSV lines (header first) with one row per architecture of ``space``.

    columns: ``{column name: float32 [N] in canonical order}``; order: row permutation.
    """
    names = arch_names.all_names(space)
    order = range(len(names)) if order is None else order
    lines = ["arch," + ",".join(columns)]
    for i in order:
        lines.append(",".join([names[i]] + [fmt(col[i]) for col in columns.values()]))
    return lines


def write_lines(path: Path, lines, ending: str = "\n") -> Path:
    path.write_bytes((ending.join(lines) + ending).encode())
    return path


def line_no(lines, name: str) -> int:
    """1-based line of the row whose first field is ``name``."""
    return next(k + 1 for k, line in enumerate(lines) if line.split(",")[0] == name)


def has_line(message: str, line: int) -> bool:
    return re.search(rf"\bline {line}\b", message) is not None


@pytest.fixture
def micro_values():
    return {"jigsaw": fake_values("micro", 1), "normal": fake_values("micro", 2)}


@pytest.fixture
def good_micro_lines(micro_values):
    return space_lines("micro", micro_values)


@pytest.fixture
def small_macro_lines():
    return space_lines("macro", {"my_task": fake_values("macro", 3)})


def load_error(path: Path, space: str = "micro", exc=DataError) -> str:
    with pytest.raises(exc) as info:
        load_table(space, data=path, use_cache=False)
    message = str(info.value)
    assert str(path) in message, message
    return message


# -- the shared real data ------------------------------------------------------------------------
@pytest.mark.parametrize("space, count", [("micro", 4096), ("macro", 3256)])
def test_shared_tables_shape_and_tasks(tables, space, count):
    table = tables[space]
    assert table.space == space
    assert table.tasks == OFFICIAL_TASKS
    assert table.valid.shape == (4, count) and table.valid.dtype == np.float32
    assert table.test is None and not table.has_test
    assert np.isfinite(np.asarray(table.valid)).all()
    assert table.source.endswith(f"{space}.csv")


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_named_rows_read_back_exactly(raw_csv, tables, space):
    header, rows = raw_csv[space]
    table = tables[space]
    n = len(rows)
    picks = sorted({0, 1, 2, 17, n // 3, n // 2, (2 * n) // 3, n - 2, n - 1})
    checked = 0
    for r in picks:
        name = rows[r][0]
        for j, task in enumerate(header[1:], start=1):
            expected = np.float32(float(rows[r][j]))
            got = np.asarray(table.valid_of(task))[table.index(name)]
            assert got == expected, (space, name, task)
            checked += 1
    assert checked == len(picks) * 4


def test_known_values_from_the_readme_ranges(micro_table):
    # The README's documented ranges of the micro table (a check independent of the CSV text).
    co = np.asarray(micro_table.valid_of("class_object"))
    rl = np.asarray(micro_table.valid_of("room_layout"))
    ae = np.asarray(micro_table.valid_of("autoencoder"))
    ss = np.asarray(micro_table.valid_of("segmentsemantic"))
    assert 21.0 < co.min() < 21.5 and 45.4 < co.max() < 45.8
    assert -1.1 < rl.min() < -1.08 and -0.61 < rl.max() < -0.59
    assert 0.0 < ae.min() < 0.002 and 0.57 < ae.max() < 0.58
    assert 91.5 < ss.min() < 91.7 and 94.5 < ss.max() < 94.7


def test_whole_shared_table_matches_the_text(raw_csv, tables):
    for space in ("micro", "macro"):
        header, rows = raw_csv[space]
        table = tables[space]
        expected = np.full((4, table.num_archs), np.nan, np.float32)
        for row in rows:
            expected[:, table.index(row[0])] = [np.float32(float(c)) for c in row[1:]]
        assert header[1:] == list(table.tasks)
        np.testing.assert_array_equal(np.asarray(table.valid), expected)


# -- other tasks, column orders, row orders, test columns -----------------------------------------
def test_arbitrary_task_names_and_shuffled_rows(tmp_path, micro_values):
    n = 4096
    order = np.random.default_rng(0).permutation(n)
    path = write_lines(tmp_path / "t.csv", space_lines("micro", micro_values, order=order))
    table = load_table("micro", data=path, use_cache=False)
    assert table.space == "micro" and table.tasks == ("jigsaw", "normal")
    assert table.test is None
    np.testing.assert_array_equal(np.asarray(table.valid_of("jigsaw")), micro_values["jigsaw"])
    np.testing.assert_array_equal(np.asarray(table.valid_of("normal")), micro_values["normal"])
    # the same row in file and table
    name = arch_names.all_names("micro")[order[0]]
    assert np.asarray(table.valid_of("normal"))[table.index(name)] == micro_values["normal"][order[0]]


def test_single_task_macro_file_with_crlf(tmp_path, small_macro_lines):
    path = write_lines(tmp_path / "m.csv", small_macro_lines, ending="\r\n")
    table = load_table("macro", data=path, use_cache=False)
    assert table.space == "macro" and table.tasks == ("my_task",)
    np.testing.assert_array_equal(np.asarray(table.valid[0]), fake_values("macro", 3))


def test_task_selection_and_reordering(tmp_path, micro_values):
    values = dict(micro_values, my_task=fake_values("micro", 9))
    path = write_lines(tmp_path / "t.csv", space_lines("micro", values))
    table = load_table("micro", data=path, tasks=["my_task", "jigsaw"], use_cache=False)
    assert table.tasks == ("my_task", "jigsaw")
    np.testing.assert_array_equal(np.asarray(table.valid[0]), values["my_task"])
    np.testing.assert_array_equal(np.asarray(table.valid[1]), values["jigsaw"])
    single = load_table("micro", data=path, tasks=["normal"], use_cache=False)
    assert single.tasks == ("normal",) and single.valid.shape == (1, 4096)
    np.testing.assert_array_equal(np.asarray(single.valid[0]), values["normal"])


def test_shared_data_task_subset(shared_data_dir, macro_table):
    sub = load_table("macro", data=shared_data_dir, tasks=["segmentsemantic", "class_object"])
    assert sub.tasks == ("segmentsemantic", "class_object")
    np.testing.assert_array_equal(
        np.asarray(sub.valid), np.asarray(macro_table.valid)[[3, 0]]
    )


def test_test_columns_in_any_order(tmp_path, micro_values):
    test_j = fake_values("micro", 11)
    test_n = fake_values("micro", 12)
    columns = {
        "test:normal": test_n,
        "normal": micro_values["normal"],
        "test:jigsaw": test_j,
        "jigsaw": micro_values["jigsaw"],
    }
    order = np.random.default_rng(5).permutation(4096)
    path = write_lines(tmp_path / "t.csv", space_lines("micro", columns, order=order))
    table = load_table("micro", data=path, use_cache=False)
    assert table.tasks == ("normal", "jigsaw") and table.has_test
    np.testing.assert_array_equal(np.asarray(table.valid_of("jigsaw")), micro_values["jigsaw"])
    np.testing.assert_array_equal(np.asarray(table.test_of("jigsaw")), test_j)
    np.testing.assert_array_equal(np.asarray(table.test_of("normal")), test_n)
    sub = load_table("micro", data=path, tasks=["jigsaw"], use_cache=False)
    assert sub.tasks == ("jigsaw",)
    np.testing.assert_array_equal(np.asarray(sub.test[0]), test_j)
    np.testing.assert_array_equal(np.asarray(sub.valid[0]), micro_values["jigsaw"])


def test_whitespace_around_cells_and_blank_lines_are_tolerated(tmp_path, good_micro_lines, micro_values):
    lines = list(good_micro_lines)
    lines[5] = " , ".join(lines[5].split(","))
    lines.insert(10, "")
    table = load_table("micro", data=write_lines(tmp_path / "t.csv", lines), use_cache=False)
    np.testing.assert_array_equal(np.asarray(table.valid_of("normal")), micro_values["normal"])


def test_table_from_numpy_and_select_tasks():
    valid = np.stack([fake_values("macro", 1), fake_values("macro", 2)])
    test = valid + 1
    t = table_from_numpy("macro", ["a", "b"], valid, test, source="here")
    s = t.select_tasks(["b"])
    np.testing.assert_array_equal(np.asarray(s.valid[0]), valid[1])
    np.testing.assert_array_equal(np.asarray(s.test[0]), test[1])
    with pytest.raises(ConfigError, match=r"'c'.*tasks present: a, b"):
        t.valid_of("c")
    with pytest.raises(ConfigError, match="64-1111-basic"):
        t.index("64-1111-basic")


# -- errors --------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "micro.csv"
    message = load_error(path)
    assert loader.OFFICIAL_FILE in message and "JAXNAS_DATA" in message


def test_read_csv_missing_file(tmp_path):
    path = tmp_path / "gone.csv"
    with pytest.raises(DataError, match=re.escape(str(path))):
        read_csv(path)


def test_folder_without_the_space_file(tmp_path, small_macro_lines):
    write_lines(tmp_path / "macro.csv", small_macro_lines)
    (tmp_path / "notes.txt").write_text("nothing here")
    message = load_error(tmp_path, "micro")
    assert "micro.csv" in message and loader.OFFICIAL_FILE in message


def test_folder_with_several_pth_files(tmp_path):
    (tmp_path / "a.pth").write_bytes(b"\x80")
    (tmp_path / "b.pth").write_bytes(b"\x80")
    message = load_error(tmp_path, "micro")
    assert "a.pth" in message and "b.pth" in message


def test_unknown_task_lists_tasks_present(tmp_path, good_micro_lines):
    path = write_lines(tmp_path / "t.csv", good_micro_lines)
    with pytest.raises(ConfigError) as info:
        load_table("micro", data=path, tasks=["jigsaw", "class_object"], use_cache=False)
    message = str(info.value)
    assert "class_object" in message and "jigsaw, normal" in message and str(path) in message


def test_unknown_space_and_epoch():
    with pytest.raises(ConfigError, match="nano"):
        resolve_data_file("nano")
    with pytest.raises(ConfigError, match="epoch"):
        load_table("micro", epoch="last")


def test_csv_rejects_pth_only_options(tmp_path, good_micro_lines):
    path = write_lines(tmp_path / "t.csv", good_micro_lines)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_table("micro", data=path, epoch="best", use_cache=False)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_table("micro", data=path, metrics={"normal": "x"}, use_cache=False)


def test_missing_architectures_are_named(tmp_path, good_micro_lines):
    dropped = [good_micro_lines[k].split(",")[0] for k in (1, 700, 4096)]
    lines = [line for line in good_micro_lines if line.split(",")[0] not in dropped]
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert "3 of the 4096" in message
    assert all(name in message for name in dropped)


def test_missing_architectures_macro(tmp_path, small_macro_lines):
    lines = small_macro_lines[:-1]
    message = load_error(write_lines(tmp_path / "m.csv", lines), "macro")
    assert small_macro_lines[-1].split(",")[0] in message


@pytest.mark.parametrize(
    "bad_name", ["64-41414-0_00_004", "64-41414-0_00_0000", "resnet", "64-1111-basic"]
)
def test_unknown_architecture_gives_its_line(tmp_path, good_micro_lines, bad_name):
    lines = list(good_micro_lines)
    k = 1234
    lines[k] = bad_name + "," + lines[k].split(",", 1)[1]
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert has_line(message, k + 1) and bad_name in message


def test_macro_name_in_micro_file(tmp_path, good_micro_lines):
    lines = list(good_micro_lines)
    k = 300
    lines[k] = "64-22231-basic," + lines[k].split(",", 1)[1]
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert has_line(message, k + 1) and "64-22231-basic" in message and "macro" in message


def test_micro_name_in_macro_file(tmp_path, small_macro_lines):
    lines = list(small_macro_lines)
    k = 3000
    lines[k] = "64-41414-3_13_113," + lines[k].split(",", 1)[1]
    message = load_error(write_lines(tmp_path / "m.csv", lines), "macro")
    assert has_line(message, k + 1) and "64-41414-3_13_113" in message and "micro" in message


def test_file_of_the_other_space(tmp_path, small_macro_lines):
    message = load_error(write_lines(tmp_path / "m.csv", small_macro_lines), "micro")
    assert "macro" in message


def test_duplicate_rows_give_both_lines(tmp_path, good_micro_lines):
    lines = list(good_micro_lines)
    lines.insert(3000, lines[42])  # a row appears twice: lines 43 and 3001
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert has_line(message, 43) and has_line(message, 3001)
    assert lines[42].split(",")[0] in message


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-inf", "Infinity", "", "abc", "1.2.3", "1,5"])
@pytest.mark.parametrize("column", [1, 2])
def test_bad_cells_give_line_and_column(tmp_path, good_micro_lines, cell, column):
    lines = list(good_micro_lines)
    k = 2500
    fields = lines[k].split(",")
    fields[column] = f'"{cell}"' if "," in cell else cell
    lines[k] = ",".join(fields)
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    task = ("jigsaw", "normal")[column - 1]
    assert has_line(message, k + 1) and repr(task) in message


def test_bad_test_cell_names_the_test_column(tmp_path, micro_values):
    columns = dict(micro_values, **{"test:jigsaw": micro_values["jigsaw"], "test:normal": micro_values["normal"]})
    lines = space_lines("micro", columns)
    fields = lines[77].split(",")
    fields[4] = "nan"
    lines[77] = ",".join(fields)
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert has_line(message, 78) and "'test:normal'" in message


@pytest.mark.parametrize("first", ["name", "architecture", "", "jigsaw", "Arch"])
def test_wrong_header(tmp_path, good_micro_lines, first):
    lines = list(good_micro_lines)
    lines[0] = first + "," + lines[0].split(",", 1)[1]
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert has_line(message, 1) and "'arch'" in message


def test_header_without_task_columns(tmp_path):
    names = arch_names.all_names("macro")
    message = load_error(write_lines(tmp_path / "m.csv", ["arch", *names]), "macro")
    assert has_line(message, 1)


@pytest.mark.parametrize(
    "header, fragment",
    [
        ("arch,jigsaw,jigsaw", "duplicate"),
        ("arch,jigsaw,,normal", "empty column"),
        ("arch,jigsaw,normal,test:other", "test:other"),
        ("arch,jigsaw,normal,test:jigsaw", "normal"),
    ],
)
def test_bad_header_columns(tmp_path, header, fragment):
    width = header.count(",")
    lines = [header] + [n + ",1.0" * width for n in arch_names.all_names("micro")]
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert has_line(message, 1) and fragment in message


@pytest.mark.parametrize("change", ["drop", "extra"])
def test_ragged_rows(tmp_path, good_micro_lines, change):
    lines = list(good_micro_lines)
    k = 4000
    lines[k] = lines[k].rsplit(",", 1)[0] if change == "drop" else lines[k] + ",1.0"
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert has_line(message, k + 1)


def test_line_numbers_count_blank_lines(tmp_path, good_micro_lines):
    lines = list(good_micro_lines)
    lines.insert(5, "")
    lines.insert(5, "")
    lines[100] = lines[100].rsplit(",", 1)[0] + ",oops"
    message = load_error(write_lines(tmp_path / "t.csv", lines))
    assert has_line(message, 101)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    message = load_error(path)
    assert "empty" in message


def test_header_only(tmp_path):
    path = write_lines(tmp_path / "h.csv", ["arch,jigsaw"])
    message = load_error(path)
    assert "no data rows" in message


def test_binary_garbage_is_a_data_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"arch,a\n\xff\xfe\x00\x81\n")
    load_error(path)


def test_every_loader_error_is_a_jaxnas_error():
    assert issubclass(DataError, JaxnasError) and issubclass(ConfigError, JaxnasError)


# -- where the data is found --------------------------------------------------------------------
@pytest.fixture
def two_folders(tmp_path, micro_values):
    """Two folders with different micro tables; returns (folder_a, folder_b)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_lines(a / "micro.csv", space_lines("micro", {"jigsaw": micro_values["jigsaw"]}))
    write_lines(b / "micro.csv", space_lines("micro", {"normal": micro_values["normal"]}))
    return a, b


def test_explicit_file_and_folder_beat_the_environment(monkeypatch, two_folders):
    a, b = two_folders
    monkeypatch.setenv("JAXNAS_DATA", str(b))
    assert resolve_data_file("micro", a) == a / "micro.csv"
    assert resolve_data_file("micro", str(a / "micro.csv")) == a / "micro.csv"
    assert load_table("micro", data=a, use_cache=False).tasks == ("jigsaw",)
    assert load_table("micro", data=a / "micro.csv", use_cache=False).tasks == ("jigsaw",)
    assert load_table("micro", use_cache=False).tasks == ("normal",)


def test_environment_variable_file_or_folder(monkeypatch, two_folders):
    a, b = two_folders
    monkeypatch.setenv("JAXNAS_DATA", str(b / "micro.csv"))
    assert resolve_data_file("micro") == b / "micro.csv"
    monkeypatch.setenv("JAXNAS_DATA", str(a))
    assert resolve_data_file("micro") == a / "micro.csv"
    assert load_table("micro", use_cache=False).tasks == ("jigsaw",)


def test_default_is_the_shared_folder(monkeypatch, tmp_path, shared_data_dir):
    monkeypatch.delenv("JAXNAS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    for space in ("micro", "macro"):
        assert resolve_data_file(space).resolve() == (shared_data_dir / f"{space}.csv").resolve()
    assert load_table("macro").tasks == OFFICIAL_TASKS


def test_folder_beside_the_working_directory_then_dot_data(monkeypatch, tmp_path, two_folders):
    a, b = two_folders
    # Pretend the package lives somewhere without a shared folder beside it.
    fake_pkg = tmp_path / "site" / "pkgroot" / "jaxnas" / "data" / "loader.py"
    monkeypatch.setattr(loader, "__file__", str(fake_pkg))
    monkeypatch.delenv("JAXNAS_DATA", raising=False)
    work = tmp_path / "work"
    repo = work / "repo"
    (repo / "data").mkdir(parents=True)
    monkeypatch.chdir(repo)
    with pytest.raises(DataError) as info:
        resolve_data_file("micro")
    message = str(info.value)
    # says where it looked and how to get the official file
    assert str(tmp_path / "site" / "shared" / "data" / "transnas-bench-101") in message
    assert str(work / "shared" / "data" / "transnas-bench-101") in message
    assert str(repo / "data") in message
    assert loader.OFFICIAL_FILE in message and "JAXNAS_DATA" in message
    # ./data is the last resort
    (repo / "data" / "micro.csv").write_bytes((b / "micro.csv").read_bytes())
    assert resolve_data_file("micro") == repo / "data" / "micro.csv"
    # ../shared/data/transnas-bench-101 beside the working directory comes before it
    shared = work / "shared" / "data" / "transnas-bench-101"
    shared.mkdir(parents=True)
    (shared / "micro.csv").write_bytes((a / "micro.csv").read_bytes())
    assert resolve_data_file("micro") == shared / "micro.csv"
    assert load_table("micro", use_cache=False).tasks == ("jigsaw",)
    # and JAXNAS_DATA before both
    monkeypatch.setenv("JAXNAS_DATA", str(b))
    assert resolve_data_file("micro") == b / "micro.csv"


# -- cache ---------------------------------------------------------------------------------------
@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("JAXNAS_CACHE_DIR", str(d))
    return d


def test_session_cache_is_not_the_home_cache():
    import os

    assert "JAXNAS_CACHE_DIR" in os.environ
    assert Path(os.environ["JAXNAS_CACHE_DIR"]).resolve() != (Path.home() / ".cache" / "jaxnas").resolve()


def test_second_load_hits_the_cache(tmp_path, cache_dir, monkeypatch, micro_values):
    columns = dict(micro_values, **{"test:jigsaw": micro_values["normal"], "test:normal": micro_values["jigsaw"]})
    path = write_lines(tmp_path / "t.csv", space_lines("micro", columns))
    first = load_table("micro", data=path)
    assert len(list(cache_dir.glob("micro-*.npz"))) == 1

    def no_reading(*args, **kwargs):
        raise AssertionError("read_csv called although the table is cached")

    monkeypatch.setattr(loader, "read_csv", no_reading)
    second = load_table("micro", data=path)
    assert second.tasks == first.tasks == ("jigsaw", "normal")
    np.testing.assert_array_equal(np.asarray(second.valid), np.asarray(first.valid))
    np.testing.assert_array_equal(np.asarray(second.test), np.asarray(first.test))
    assert second.source == str(path)
    sub = load_table("micro", data=path, tasks=["normal"])  # task selection also from the cache
    np.testing.assert_array_equal(np.asarray(sub.valid[0]), micro_values["normal"])
    np.testing.assert_array_equal(np.asarray(sub.test[0]), micro_values["jigsaw"])


def test_edited_source_invalidates_the_cache(tmp_path, cache_dir, monkeypatch, micro_values):
    path = tmp_path / "t.csv"
    write_lines(path, space_lines("micro", {"jigsaw": micro_values["jigsaw"]}))
    calls = []
    real = loader.read_csv
    monkeypatch.setattr(loader, "read_csv", lambda *a, **k: calls.append(a) or real(*a, **k))
    load_table("micro", data=path)
    load_table("micro", data=path)
    assert len(calls) == 1
    write_lines(path, space_lines("micro", {"jigsaw": micro_values["normal"]}))
    table = load_table("micro", data=path)
    assert len(calls) == 2
    np.testing.assert_array_equal(np.asarray(table.valid[0]), micro_values["normal"])


def test_no_cache_when_disabled(tmp_path, cache_dir, good_micro_lines):
    path = write_lines(tmp_path / "t.csv", good_micro_lines)
    load_table("micro", data=path, use_cache=False)
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_cache_file_is_converted_again(tmp_path, cache_dir, good_micro_lines, micro_values, damage):
    path = write_lines(tmp_path / "t.csv", good_micro_lines)
    load_table("micro", data=path)
    (cache_file,) = cache_dir.glob("micro-*.npz")
    data = cache_file.read_bytes()
    cache_file.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"not a cache" * 10, "empty": b""}[damage]
    )
    table = load_table("micro", data=path)
    np.testing.assert_array_equal(np.asarray(table.valid_of("jigsaw")), micro_values["jigsaw"])


def test_shared_tables_are_cached_in_the_session_dir(shared_data_dir, tables):
    import os

    cached = list(Path(os.environ["JAXNAS_CACHE_DIR"]).glob("*.npz"))
    assert {p.name.split("-")[0] for p in cached} >= {"micro", "macro"}
    again = load_table("micro", data=shared_data_dir)
    np.testing.assert_array_equal(np.asarray(again.valid), np.asarray(tables["micro"].valid))
    assert not math.isnan(float(again.valid[0, 0]))


def test_environment_variable_pointing_nowhere_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXNAS_DATA", str(tmp_path / "typo"))
    with pytest.raises(DataError, match="JAXNAS_DATA=.*typo.*no such file"):
        resolve_data_file("micro")


def test_csv_with_byte_order_mark_loads(tmp_path, micro_table):
    text = (Path(micro_table.source)).read_text()
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    table = load_table("micro", data=path, use_cache=False)
    assert table.tasks == micro_table.tasks
    np.testing.assert_array_equal(np.asarray(table.valid), np.asarray(micro_table.valid))
