"""Architecture names <-> encodings <-> canonical indices, checked on every row of the real data.

The expected values here are computed by the test's own string parsing and its own statement of
the macro validity rule, not by :mod:`jaxnas.data.names`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jaxnas.data import names as arch_names


def parse_micro(name: str) -> tuple[int, ...]:
    prefix, cell = name[: len("64-41414-")], name[len("64-41414-") :]
    assert prefix == "64-41414-"
    a, b, c = cell.split("_")
    assert (len(a), len(b), len(c)) == (1, 2, 3)
    return tuple(int(ch) for ch in a + b + c)


def parse_macro(name: str) -> tuple[int, ...]:
    head, code, tail = name.split("-")
    assert (head, tail) == ("64", "basic")
    digits = [int(ch) for ch in code]
    return tuple(digits + [0] * (6 - len(digits)))


PARSE = {"micro": parse_micro, "macro": parse_macro}


def macro_rule(modules: tuple[int, ...]) -> bool:
    """The README's rule: 4..6 modules, 1..4 of them in {3,4}, 1..3 of them in {2,4}."""
    down = sum(m in (3, 4) for m in modules)
    double = sum(m in (2, 4) for m in modules)
    return 4 <= len(modules) <= 6 and 1 <= down <= 4 and 1 <= double <= 3


def csv_names(raw_csv, space):
    return [row[0] for row in raw_csv[space][1]]


@pytest.mark.parametrize("space, count", [("micro", 4096), ("macro", 3256)])
def test_every_csv_row_round_trips(raw_csv, tables, space, count):
    table = tables[space]
    names = csv_names(raw_csv, space)
    assert len(names) == count == len(set(names))
    expected_order = sorted(names, key=PARSE[space])  # canonical = lexicographic encodings
    encodings = np.asarray(table.encodings)
    all_enc = arch_names.all_encodings(space)
    assert all_enc.shape == (count, 6) and all_enc.dtype == np.int32
    np.testing.assert_array_equal(encodings, all_enc)
    for name in names:
        code = arch_names.encode(space, name)
        assert code == PARSE[space](name), name
        assert arch_names.decode(space, code) == name
        i = table.index(name)
        assert expected_order[i] == name
        assert table.name(i) == name
        assert tuple(encodings[i]) == code
        assert tuple(table.encoding(i)) == code
        assert table.index_of_encoding(code) == i
        assert arch_names.detect_space(name) == space
    assert arch_names.all_names(space) == tuple(expected_order)
    assert table.names == tuple(expected_order)
    assert table.num_archs == count


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_canonical_order_is_strictly_lexicographic(space):
    enc = [tuple(r) for r in arch_names.all_encodings(space).tolist()]
    assert all(a < b for a, b in zip(enc, enc[1:]))


def test_micro_space_is_all_4_to_the_6_codes():
    enc = {tuple(r) for r in arch_names.all_encodings("micro").tolist()}
    assert enc == set(itertools.product(range(4), repeat=6))


def test_macro_rule_gives_exactly_the_macro_csv(raw_csv):
    by_rule = set()
    for length in range(3, 8):  # one length beyond each side of the valid range
        for modules in itertools.product(range(1, 5), repeat=length):
            name = "64-" + "".join(map(str, modules)) + "-basic"
            if macro_rule(modules):
                by_rule.add(name)
                assert arch_names.encode("macro", name) == parse_macro(name)
            else:
                assert arch_names.encode("macro", name) is None, name
    assert len(by_rule) == 3256
    assert by_rule == set(csv_names(raw_csv, "macro"))
    assert by_rule == set(arch_names.all_names("macro"))


def test_macro_code_validity_needs_trailing_padding():
    assert arch_names.macro_code_is_valid((1, 2, 3, 4, 0, 0))
    assert not arch_names.macro_code_is_valid((1, 2, 0, 3, 4, 0))  # gap in the middle
    assert not arch_names.macro_code_is_valid((0, 1, 2, 3, 4, 0))
    assert not arch_names.macro_code_is_valid((1, 2, 3, 0, 0, 0))  # 3 modules
    assert not arch_names.macro_code_is_valid((1, 1, 1, 1, 0, 0))  # no downsampling
    assert not arch_names.macro_code_is_valid((3, 3, 3, 3, 0, 0))  # no channel doubling
    assert not arch_names.macro_code_is_valid((2, 2, 2, 2, 3, 0))  # 4 doublings
    assert not arch_names.macro_code_is_valid((3, 3, 3, 3, 3, 2))  # 5 downsamplings
    assert arch_names.macro_code_is_valid((4, 4, 4, 1, 1, 1))  # 3 of each is allowed


@pytest.mark.parametrize(
    "space, name",
    [
        ("micro", "64-41414-0_00_004"),  # op 4 does not exist
        ("micro", "64-41414-0_00_00"),
        ("micro", "64-41414-0_000_00"),
        ("micro", "64-41414-00_00_000"),
        ("micro", "32-41414-0_00_000"),
        ("micro", "64-41414-0_00_000\n"),  # trailing newline is not part of a name
        ("micro", " 64-41414-0_00_000"),
        ("micro", "64-41414-0_00_000 "),
        ("micro", "64-1234-basic"),
        ("macro", "64-41414-0_00_000"),
        ("macro", "64-1234-basic\n"),
        ("macro", "64-1234-Basic"),
        ("macro", "64-1205-basic"),  # 0 and 5 are not modules
        ("macro", "64-123-basic"),
        ("macro", "64-1234123-basic"),
        ("macro", "64-1111-basic"),  # fails the validity rule
        ("macro", ""),
    ],
)
def test_encode_rejects_non_names(space, name):
    assert arch_names.encode(space, name) is None


def test_detect_space():
    assert arch_names.detect_space("64-41414-3_13_113") == "micro"
    assert arch_names.detect_space("64-22231-basic") == "macro"
    assert arch_names.detect_space("64-1111-basic") is None
    assert arch_names.detect_space("resnet50") is None


def test_unknown_space_is_an_error():
    with pytest.raises(ValueError, match="nano"):
        arch_names.encode("nano", "64-41414-0_00_000")
    with pytest.raises(ValueError, match="nano"):
        arch_names.decode("nano", (0,) * 6)
    with pytest.raises(ValueError, match="nano"):
        arch_names.all_encodings("nano")


def test_all_encodings_is_read_only():
    with pytest.raises(ValueError):
        arch_names.all_encodings("micro")[0, 0] = 3
