"""Members kept as text: exact round trips, earliest grants, values rebuilt on each read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.core.model import Actual, Group
from exporter.core.packed import Unpacked, earliest, pack, packed_actual, unpack


@given(st.lists(st.text()))
def test_any_strings_round_trip_exactly(values: list[str]) -> None:
    # Separators, quotes, newlines, NULs and astral characters all survive.
    assert unpack(pack(values)) == values


def test_unpacking_something_that_is_not_an_array_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a JSON array"):
        unpack('{"a": 1}')


def test_earliest_keeps_the_first_grant_of_a_repeated_email() -> None:
    emails = ["a@x", "b@x", "a@x", "a@x", "c@x", "c@x"]
    stamps = ["2026-11-20T10:00:00Z", None, "2026-11-01T10:00:00Z", "2026-11-05T10:00:00Z"]
    stamps += [None, "2026-11-02T00:00:00Z"]

    assert earliest(emails, stamps) == {
        "a@x": "2026-11-01T10:00:00Z",
        "b@x": None,
        "c@x": "2026-11-02T00:00:00Z",  # a known time beats an unknown one
    }


def test_earliest_without_repeats_is_the_plain_pairing() -> None:
    assert earliest(["a@x", "b@x"], ["t2", "t1"]) == {"a@x": "t2", "b@x": "t1"}


def test_earliest_refuses_lists_of_different_lengths() -> None:
    with pytest.raises(ValueError):
        earliest(["a@x", "b@x"], ["t1"])


def test_unpacked_rebuilds_each_value_and_keeps_none() -> None:
    built: list[str] = []

    def make(name: str) -> list[str]:
        built.append(name)
        return [name]

    values = Unpacked({"a": lambda: make("a"), "b": lambda: make("b")})

    first, second = values["a"], values["a"]
    assert first == second == ["a"] and first is not second
    assert built == ["a", "a"]
    assert list(values) == ["a", "b"] and len(values) == 2
    assert "b" in values and "missing" not in values
    assert built == ["a", "a"]  # asking whether a key is there builds nothing
    assert values.get("missing") is None
    with pytest.raises(KeyError):
        values["missing"]


def test_a_packed_actual_rebuilds_the_same_side() -> None:
    group = Group("g1", "aud", [{"everyone": {}}])
    actual = Actual(group=group, emails=frozenset({"a@x", 'o"neil@x'}))
    errored = Actual(error="HTTP 500")

    assert packed_actual(actual)() == actual
    assert packed_actual(errored)() is errored
