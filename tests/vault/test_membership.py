"""Expected members from a real Vault file: exact audience match, active users, one query."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exporter.vault import VaultError
from exporter.vault.db import VaultDB
from exporter.vault.membership import expected_members, list_audiences


def fill(path: Path, script: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(script)


WORLD = """
INSERT INTO iam_organization VALUES ('o1', 'LMS'), ('o2', 'Other');
INSERT INTO iam_application VALUES ('a1', 'o1', 'LMS', '["lms-viewer","lms-admin"]'),
                                   ('a2', 'o2', 'Legacy', '["lms"]');
INSERT INTO iam_group VALUES ('g1', 'o1', 'Teachers'), ('g2', 'o1', 'Staff'), ('g3', 'o2', 'Old');
INSERT INTO iam_user (id, email, status) VALUES
    ('u1', 'Alice@Example.com', 'active'), ('u2', 'bob@example.com', 'suspended'),
    ('u3', 'carol@example.com', 'active'), ('u4', 'dave@example.com', 'deleted');
INSERT INTO iam_user_group VALUES
    ('u1', 'g1', '2026-11-20T10:00:00Z'), ('u1', 'g2', '2026-11-01T10:00:00Z'),
    ('u2', 'g1', '2026-11-20T10:00:00Z'), ('u3', 'g3', '2026-11-20T10:00:00Z'),
    ('u4', 'g2', '2026-11-20T10:00:00Z');
INSERT INTO sys_infra_state (audience, namespace, provider) VALUES
    ('lms-viewer', 'lms', 'cloudflare_access'), ('lms', 'lms', 'cloudflare_access'),
    ('nobody', 'x', 'cloudflare_access');
"""


def test_exact_match_active_users_lowercase_and_earliest_grant(empty_vault: Path) -> None:
    fill(empty_vault, WORLD)
    db = VaultDB(empty_vault).open()
    with db.connect() as conn:
        result = expected_members(conn, ["lms-viewer", "lms", "nobody"])
    # "lms" is granted by a2 only: never by the substring of "lms-viewer".
    assert result["lms"].members == {"carol@example.com": "2026-11-20T10:00:00Z"}
    assert result["lms-viewer"].members == {"alice@example.com": "2026-11-01T10:00:00Z"}
    assert result["nobody"].members == {} and result["nobody"].error is None


def test_a_malformed_audiences_value_makes_the_audiences_it_may_grant_errors(
    empty_vault: Path,
) -> None:
    fill(
        empty_vault,
        WORLD + "INSERT INTO iam_application VALUES ('bad', 'o1', 'B', '[\"lms-viewer\"');",
    )
    with VaultDB(empty_vault).open().connect() as conn:
        result = expected_members(conn, ["lms-viewer", "nobody"])
    assert result["lms-viewer"].error and "bad" in result["lms-viewer"].error
    assert result["nobody"].error is None


def test_extra_columns_are_tolerated(empty_vault: Path) -> None:
    fill(
        empty_vault,
        WORLD + "ALTER TABLE iam_user ADD COLUMN display_name TEXT;"
        "ALTER TABLE sys_infra_state ADD COLUMN owner TEXT;",
    )
    with VaultDB(empty_vault).open().connect() as conn:
        assert [a.audience for a in list_audiences(conn)] == ["lms", "lms-viewer", "nobody"]
        assert expected_members(conn, ["lms"])["lms"].members


def test_opening_is_idempotent_and_never_alters_iam_tables(empty_vault: Path) -> None:
    def iam_schema() -> list[str]:
        with sqlite3.connect(empty_vault) as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT sql FROM sqlite_master WHERE name LIKE 'iam_%' OR name = 'sys_infra_state'"
                    " ORDER BY name"
                )
            ]

    before = iam_schema()
    VaultDB(empty_vault).open()
    VaultDB(empty_vault).open()
    assert iam_schema() == before
    with sqlite3.connect(empty_vault) as conn:
        assert conn.execute("SELECT count(*) FROM sys_infra_drift_schema").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_database_from_before_access_notes_gains_the_column(empty_vault: Path) -> None:
    with sqlite3.connect(empty_vault) as conn:
        conn.execute(
            "CREATE TABLE sys_infra_drift_member (audience TEXT NOT NULL, kind TEXT NOT NULL"
            " CHECK (kind IN ('missing', 'extra')), email TEXT NOT NULL,"
            " first_seen_at TEXT NOT NULL, PRIMARY KEY (audience, kind, email)) WITHOUT ROWID"
        )
        conn.execute(
            "INSERT INTO sys_infra_drift_member VALUES ('a', 'missing', 'x@y.com', '2026-01-01')"
        )
    VaultDB(empty_vault).open()
    VaultDB(empty_vault).open()
    with sqlite3.connect(empty_vault) as conn:
        assert conn.execute("SELECT email, note FROM sys_infra_drift_member").fetchall() == [
            ("x@y.com", None)
        ]


def test_unusable_databases_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="not found"):
        VaultDB(tmp_path / "missing.db").open()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(VaultError, match="corrupt or not an SQLite database"):
        VaultDB(garbage).open()
    bare = tmp_path / "bare.db"
    sqlite3.connect(bare).close()
    with pytest.raises(VaultError, match="missing tables iam_user"):
        VaultDB(bare).open()
    assert not (tmp_path / "missing.db").exists()  # nothing was created on the way


def test_a_read_only_database_is_explained() -> None:
    # Root (this CI) writes through file modes, so the mapping is checked on SQLite's own error.
    from exporter.vault.db import _explain

    error = sqlite3.OperationalError("attempt to write a readonly database")
    assert "read-only: vault-drift needs write access" in _explain(error)
