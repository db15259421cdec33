"""SQL as data: the statements a write is made of, and rows read back, for every backend.

The write functions of ``state``, ``decisions`` and ``reporting`` return statements instead of
running them. SQLite runs a write's statements in one transaction; D1 sends them as one
``batch``, which D1 applies atomically. So no statement may depend on a value Python read
in the middle of the write: each one finds what it needs with a subquery.

Every statement keeps under D1's limits: fewer than 100 bound parameters, SQL text well
under 100 KB. Numbers are bound only where a number is stored (D1 stores a bound number as
REAL, so ``5`` in a TEXT column would read back ``"5.0"``): text is bound as text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_PARAMS = 99  # D1 refuses a statement with 100 bound parameters or more
MAX_SQL_BYTES = 100_000


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if len(self.params) > MAX_PARAMS:
            raise ValueError(f"{len(self.params)} parameters in one statement (D1 takes 99)")
        if len(self.sql.encode()) > MAX_SQL_BYTES:
            raise ValueError("statement longer than D1's 100 KB of SQL")


@dataclass(frozen=True)
class Outcome:
    """What one statement of a write did: rows changed, and the rowid of its last insert."""

    changes: int = 0
    last_row_id: int | None = None


class Cursor(Protocol):
    """The part of a DB-API cursor the read functions use."""

    @property
    def description(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...


class Reader(Protocol):
    """What the read functions are given: a sqlite3 connection, or D1 (see ``d1.py``)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...


class RowsCursor:
    """Rows already fetched (D1's answer), as a cursor."""

    def __init__(self, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        self.description = [(name, None, None, None, None, None, None) for name in columns]
        self._rows = rows
        self._next = 0

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


def insert_rows(head: str, rows: Sequence[tuple[Any, ...]], tail: str = "") -> list[Statement]:
    """``head`` (``INSERT ... (cols) VALUES``) with as many rows per statement as D1 allows."""
    if not rows:
        return []
    width = len(rows[0])
    per = max(1, MAX_PARAMS // width)
    marks = "(" + ", ".join("?" * width) + ")"
    statements = []
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        values = ", ".join([marks] * len(chunk))
        params = tuple(value for row in chunk for value in row)
        statements.append(Statement(f"{head} {values}{tail}", params))
    return statements


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def marks(count: int) -> str:
    return ", ".join("?" * count)
