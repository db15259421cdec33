"""A Vault DB file written from plain rows, for examples and tests (never a production file).

vault-api's schema and our companion tables are created first, then each table's rows are
inserted as given (column names from the keys, values as stored: times as ISO-8601 text).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

Row = Mapping[str, Any]


def write_vault(path: Path, tables: Mapping[str, Iterable[Row]]) -> Path:
    """Create the Vault DB at ``path`` (a new file) holding ``tables``' rows, in order."""
    sql = resources.files("exporter").joinpath("sql")
    with sqlite3.connect(path) as conn:
        conn.executescript(sql.joinpath("vault-schema.sql").read_text())
        conn.executescript(sql.joinpath("companion.sql").read_text())
        known = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        for table, rows in tables.items():
            if table not in known:
                raise ValueError(f"no table {table!r} in a Vault DB")
            for row in rows:
                columns = ", ".join(_quoted(name) for name in row)
                marks = ", ".join("?" for _ in row)
                conn.execute(
                    f"INSERT INTO {_quoted(table)} ({columns}) VALUES ({marks})",
                    tuple(row.values()),
                )
    conn.close()
    return path


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
