"""Members kept as text until their audience is evaluated.

A full check holds every member of every audience twice, Vault's and Cloudflare's: a million
of each at 1,000 audiences x 1,000 members. As Python sets and dicts that is about 300 MB;
as one JSON text per audience and side it is about 80 MB, and only the audience being
evaluated is ever unpacked. Both sides cross the wire as JSON anyway, so packing is cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from exporter.core.model import Actual

V = TypeVar("V")


def pack(values: Iterable[str]) -> str:
    """Strings as one JSON array text (exact round trip, whatever the strings hold)."""
    return json.dumps(list(values), separators=(",", ":"))


def unpack(text: str) -> list[Any]:
    values = json.loads(text)
    if not isinstance(values, list):
        raise ValueError("packed values are not a JSON array")
    return values


def earliest(emails: list[str], stamps: list[str | None]) -> dict[str, str | None]:
    """Email -> earliest stamp, from two parallel lists in which an email may repeat."""
    members = dict(zip(emails, stamps, strict=True))
    if len(members) == len(emails):
        return members  # no repeats: the common case, built in C
    members.clear()
    for email, stamp in zip(emails, stamps, strict=True):
        kept = members.get(email, stamp)
        members[email] = stamp if kept is None or (stamp is not None and stamp < kept) else kept
    return members


class Unpacked(Mapping[str, V]):
    """A read-only mapping whose values are rebuilt on every access and never kept.

    Whoever reads a value owns it; once dropped, its memory is back. Read each value once.
    """

    def __init__(self, makers: dict[str, Callable[[], V]]) -> None:
        self._makers = makers

    def __getitem__(self, key: str) -> V:
        return self._makers[key]()

    def __contains__(self, key: object) -> bool:
        return key in self._makers  # without building the value

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


def packed_actual(actual: Actual) -> Callable[[], Actual]:
    """Cloudflare's side with its member emails as text; calling the result rebuilds it."""
    if actual.emails is None:
        return lambda: actual
    group, text = actual.group, pack(actual.emails)
    return lambda: Actual(group=group, emails=frozenset(unpack(text)))
