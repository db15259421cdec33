"""One Cloudflare envelope read from byte chunks, its ``result`` list handed out item by item.

A listing page of 1,000 groups x 1,000 rules is ~500 MB as Python objects: parsed whole, a
full check's memory would grow with the page size Cloudflare serves. Here only one item (a
group) and a read buffer of about ``CHUNK_BYTES`` are alive at a time, whatever the page size.
No I/O: the caller passes the chunks (``response.iter_content``).

Each value is decoded by the standard library's C scanner (``JSONDecoder.raw_decode``), so
this is as fast as ``json.loads`` of the whole page. (ijson's C backend streams one prefix per
pass: reading ``success``, ``errors`` and ``result_info`` beside ``result.item`` took a second
tokenizing pass, 2-3 times slower.) The envelope's other keys may come before or after
``result`` (Cloudflare sends ``result`` first): they are known only once the document is
complete, so a caller decides on them after the items, and must discard the items when the
document turns out bad.
"""

from __future__ import annotations

import codecs
import gc
import json
from collections.abc import Iterable, Iterator
from typing import Any

CHUNK_BYTES = 1 << 18  # 256 KiB: a few groups of 1,000 rules; a value cut by it is re-read
_WHITESPACE = frozenset(" \t\n\r")
_NUMBER_GOES_ON = frozenset("0123456789.eE+-")
_DECODER = json.JSONDecoder()


class NotJson(ValueError):
    """The bytes are not one complete JSON document (cut short, malformed, not UTF-8)."""


class NotAnObject(ValueError):
    """The bytes are one JSON document, but not an object: not an envelope."""


class EnvelopeStream:
    """Iterate for the items of ``result`` when it is a list; then ``fields`` holds every
    other top-level key (and ``result`` itself when it is not a list).

    Iteration raises ``NotJson`` when the bytes are not one complete JSON document, and
    ``NotAnObject`` when they are one but not an object.
    """

    def __init__(
        self, chunks: Iterable[bytes], list_key: str = "result", read_ahead: int = CHUNK_BYTES
    ) -> None:
        self._reader = _Reader(chunks, read_ahead)
        self._list_key = list_key
        self.fields: dict[str, Any] = {}
        self.has_list = False
        self.item_count = 0

    def __iter__(self) -> Iterator[Any]:
        reader = self._reader
        if reader.peek() != "{":
            reader.value()
            if reader.peek() != "":
                raise NotJson("data after the document")
            raise NotAnObject("not a JSON object")
        reader.skip()
        if reader.peek() == "}":
            reader.skip()
        else:
            yield from self._members()
        if reader.peek() != "":
            raise NotJson("data after the document")

    def _members(self) -> Iterator[Any]:
        reader = self._reader
        while True:
            if reader.peek() != '"':
                raise NotJson("expected a key")
            key = reader.value()
            reader.take(":")
            if key in self.fields or (key == self._list_key and self.has_list):
                raise NotJson(f"key {key!r} twice")
            if key == self._list_key and reader.peek() == "[":
                self.has_list = True
                yield from self._items()
            else:
                self.fields[key] = reader.value()
            if reader.peek() == "}":
                reader.skip()
                return
            reader.take(",")

    def _items(self) -> Iterator[Any]:
        reader = self._reader
        reader.take("[")
        if reader.peek() == "]":
            reader.skip()
            return
        while True:
            yield reader.value()
            self.item_count += 1
            if reader.peek() == "]":
                reader.skip()
                return
            reader.take(",")


class _Reader:
    """A text window over the chunks: what is not yet consumed, and the next chunk on demand."""

    def __init__(self, chunks: Iterable[bytes], read_ahead: int) -> None:
        self._chunks = iter(chunks)
        self._read_ahead = read_ahead
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()  # strict, BOM skipped
        self._text = ""
        self._pos = 0
        self._eof = False

    def peek(self) -> str:
        """The next character that is not white space ("" at the end), not consumed."""
        while True:
            text, pos, end = self._text, self._pos, len(self._text)
            while pos < end and text[pos] in _WHITESPACE:
                pos += 1
            self._pos = pos
            if pos < end:
                return text[pos]
            if not self._read(1):
                return ""

    def skip(self) -> None:
        self._pos += 1

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise NotJson(f"expected {char!r}")
        self._pos += 1

    def value(self) -> Any:
        """The next JSON value, read further until it is complete."""
        self.peek()
        while True:
            # The values are dicts of strings: the cyclic GC would rescan them while they are
            # built, and JSON builds no cycles.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                value, end = _DECODER.raw_decode(self._text, self._pos)
            except ValueError:  # maybe cut by the window: read on, unless there is no more
                if self._eof:
                    raise NotJson("malformed or cut short") from None
            else:
                if self._eof or not isinstance(value, int | float) or self._number_ends(end):
                    self._pos = end
                    return value
            finally:
                if gc_was_enabled:
                    gc.enable()
            # Read at least as much again as is waiting: a huge value costs O(n), not O(n^2).
            self._read(max(self._read_ahead, len(self._text) - self._pos))

    def _number_ends(self, end: int) -> bool:
        """Whether a number read up to ``end`` is whole: "12" may be "12.5" once read on."""
        return end < len(self._text) and self._text[end] not in _NUMBER_GOES_ON

    def _read(self, at_least: int) -> bool:
        """Append ``at_least`` more characters (fewer at the end); False when none came."""
        if self._eof:
            return False
        parts, got = [self._text[self._pos :]], 0
        try:
            while got < at_least:
                chunk = next(self._chunks, None)
                piece = self._decoder.decode(chunk or b"", final=chunk is None)
                parts.append(piece)
                got += len(piece)
                if chunk is None:
                    self._eof = True
                    break
        except UnicodeDecodeError:
            raise NotJson("not UTF-8") from None
        self._text, self._pos = "".join(parts), 0
        return got > 0
