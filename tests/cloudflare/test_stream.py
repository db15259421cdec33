"""The envelope parsed from byte chunks: the same values as ``json.loads``, however it is cut."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cloudflare.stream import EnvelopeStream, NotAnObject, NotJson


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in chunks of the given sizes (cycled), empty chunks included."""
    chunks, at, index = [], 0, 0
    while at < len(data):
        size = sizes[index % len(sizes)] if sizes else len(data)
        chunks.append(data[at : at + size])
        at += size
        index += 1
    return chunks


def parse(chunks: list[bytes], read_ahead: int = 4) -> tuple[list[Any], dict[str, Any], bool]:
    envelope = EnvelopeStream(chunks, read_ahead=read_ahead)
    items = list(envelope)
    assert envelope.item_count == len(items)
    return items, envelope.fields, envelope.has_list


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
ENVELOPES = st.dictionaries(
    st.sampled_from(["success", "errors", "messages", "result_info", "other", "résumé"]),
    JSON_VALUES,
).flatmap(
    lambda fields: st.tuples(
        st.just(fields),
        st.lists(JSON_VALUES, max_size=5) | JSON_VALUES,
        st.integers(0, len(fields)),
    )
)


@settings(max_examples=300, deadline=None)
@given(
    envelope=ENVELOPES,
    sizes=st.lists(st.integers(0, 9), max_size=5),
    read_ahead=st.integers(1, 16),
    indent=st.sampled_from([None, 1]),
)
def test_any_envelope_cut_anywhere_reads_as_json_loads_does(
    envelope: tuple[dict[str, Any], Any, int],
    sizes: list[int],
    read_ahead: int,
    indent: int | None,
) -> None:
    fields, result, at = envelope
    keys = list(fields)
    ordered = {k: fields[k] for k in keys[:at]} | {"result": result}
    ordered |= {k: fields[k] for k in keys[at:]}
    data = json.dumps(ordered, indent=indent, ensure_ascii=False).encode()
    if not any(sizes):
        sizes = [*sizes, 1]

    items, rest, has_list = parse(cut(data, sizes), read_ahead)

    if isinstance(result, list):
        assert has_list and items == result and rest == fields
    else:
        assert not has_list and items == [] and rest == {**fields, "result": result}


def test_groups_longer_than_the_read_window_are_read_whole() -> None:
    rules = [{"email": {"email": f"u{j}@x.com"}} for j in range(50)]
    groups = [{"id": str(i), "include": rules} for i in range(3)]
    data = json.dumps({"result": groups, "success": True, "n": 12345}).encode()
    envelope = EnvelopeStream(cut(data, [7]), read_ahead=64)

    assert list(envelope) == groups
    assert envelope.fields == {"success": True, "n": 12345}


@pytest.mark.parametrize(
    "document",
    [
        {"success": True, "result": [{"id": "a"}, {"id": "b", "name": "ünïcode"}], "n": 1.5},
        {"result": [], "success": True},
        {},
    ],
)
def test_every_cut_short_document_is_not_json(document: dict[str, Any]) -> None:
    data = json.dumps(document, ensure_ascii=False).encode()
    for end in range(len(data)):
        with pytest.raises(NotJson):
            parse(cut(data[:end], [3]))


@pytest.mark.parametrize(
    "data",
    [
        b'{"result": [1,]}',
        b'{"result": [1] "success": true}',
        b'{"result": [1], "result": [2]}',
        b'{"success": true, "success": false}',
        b'{"success": true} {}',
        b'{"success": true}]',
        b"{success: true}",
        b'{"a": "\xff\xfe"}',
        b"",
    ],
)
def test_malformed_documents_are_not_json(data: bytes) -> None:
    with pytest.raises(NotJson):
        parse(cut(data, [2]))


@pytest.mark.parametrize("data", [b"[1, 2]", b'"text"', b"null", b" 12 "])
def test_a_document_that_is_not_an_object_is_not_an_envelope(data: bytes) -> None:
    with pytest.raises(NotAnObject):
        parse([data])


def test_a_byte_order_mark_and_white_space_are_allowed() -> None:
    items, rest, _ = parse([b"\xef\xbb\xbf \n{ ", b'"result" : [ 1 , 2 ] ,"x":[]}\n '])

    assert (items, rest) == ([1, 2], {"x": []})


def test_items_are_handed_out_before_the_document_ends() -> None:
    def chunks() -> Any:
        yield b'{"result": [{"id": "a"}, '
        raise AssertionError("read past the first item before handing it out")

    assert next(iter(EnvelopeStream(chunks()))) == {"id": "a"}
