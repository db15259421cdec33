"""Vault's expected members of every audience, in one set-based query."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial

from exporter.core.model import Audience, Expected
from exporter.core.packed import Unpacked, earliest, unpack
from exporter.core.times import parse_time
from exporter.vault.sql import Reader

# Exact audience match on the JSON array (never LIKE), active users only, emails lowercased;
# "added in Vault" is the earliest membership that grants the audience.
# The granting groups are materialised first and the join order is pinned (CROSS JOIN):
# iam_user_group has no index on group_id, so it is scanned once, and only the memberships
# of a granting group cost a user lookup. Left to itself SQLite looked up the user of every
# membership first: one audience out of 1,000 x 1,000 took seconds instead of ~0.2 s.
# One row per audience, its members as two parallel JSON arrays: SQLite's sorter and JSON
# writer do in C what a Python loop over a million rows did in seconds, and the arrays stay
# text until their audience is evaluated (see exporter/packed.py).
_EXPECTED = """
WITH wanted(audience) AS ({wanted}),
grants AS (
    SELECT DISTINCT a.organization_id, j.value AS audience
    FROM iam_application AS a, json_each(a.audiences) AS j
    WHERE json_valid(a.audiences) AND json_type(a.audiences) = 'array' AND j.type = 'text'
),
granting AS MATERIALIZED (
    SELECT DISTINCT g.id AS group_id, gr.audience
    FROM grants AS gr
    JOIN wanted AS w ON w.audience = gr.audience
    JOIN iam_group AS g ON g.organization_id = gr.organization_id
)
SELECT gg.audience,
       json_group_array(lower(trim(u.email, {blank}))) AS emails,
       json_group_array(CAST(ug.created_at AS TEXT)) AS added_at
FROM iam_user_group AS ug
CROSS JOIN granting AS gg
CROSS JOIN iam_user AS u
WHERE gg.group_id = ug.group_id AND u.id = ug.user_id
  AND u.status = 'active' AND trim(u.email, {blank}) != ''
GROUP BY gg.audience
"""

# What Python's str.strip() removes from a Cloudflare address, in ASCII: SQLite's trim()
# alone removes spaces only, and "bob@x.com\n" would never match Cloudflare's "bob@x.com".
_BLANK = "' ' || char(9, 10, 11, 12, 13, 28, 29, 30, 31)"

_BROKEN_APPLICATIONS = """
SELECT id, audiences FROM iam_application
WHERE NOT json_valid(audiences) OR json_type(audiences) != 'array'
"""


def expected_query(wanted: str) -> str:
    """The set-based query over the audiences ``wanted`` (a SELECT of one column) names."""
    return _EXPECTED.format(wanted=wanted, blank=_BLANK)


BROKEN_APPLICATIONS = _BROKEN_APPLICATIONS
AUDIENCES = (
    "SELECT audience, namespace, provider, provider_resource_id, last_sync_at"
    " FROM sys_infra_state ORDER BY audience"
)


def list_audiences(conn: Reader) -> list[Audience]:
    """Exactly the rows of sys_infra_state, in the seed's order."""
    return audiences_from(conn.execute(AUDIENCES))


def audiences_from(rows: Iterable[tuple[str, str, str, str | None, str | None]]) -> list[Audience]:
    return [
        Audience(audience, namespace, provider, group_id or None, parse_time(last_sync))
        for audience, namespace, provider, group_id, last_sync in rows
    ]


def expected_members(conn: Reader, audiences: Iterable[str]) -> Mapping[str, Expected]:
    """Expected members per audience; an audience a malformed application may grant is an error.

    Each value is unpacked when read (see ``Unpacked``): read it once and drop it.
    """
    names = list(dict.fromkeys(audiences))
    if not names:
        return {}
    wanted = "SELECT audience FROM sys_infra_state"
    params: tuple[str, ...] = ()
    if len(names) <= 500:
        wanted = " UNION ALL ".join(["SELECT ?"] * len(names))
        params = tuple(names)
    packed = {name: ("[]", "[]") for name in names}
    for audience, emails, added_at in conn.execute(expected_query(wanted), params):
        if audience in packed:
            packed[audience] = (emails, added_at)
    broken = conn.execute(_BROKEN_APPLICATIONS).fetchall()
    return unpacked_expected(packed, broken)


def unpacked_expected(
    packed: Mapping[str, tuple[str, str] | str], broken: list[tuple[str, str]]
) -> Mapping[str, Expected]:
    """Per audience its two packed arrays (emails, added-at), or why it could not be read."""
    return Unpacked(
        {
            name: partial(_failed, value)
            if isinstance(value, str)
            else partial(_expected, name, *value, broken)
            for name, value in packed.items()
        }
    )


def _failed(error: str) -> Expected:
    return Expected(error=error)


def _expected(name: str, emails: str, added_at: str, broken: list[tuple[str, str]]) -> Expected:
    # A malformed `audiences` value may or may not grant this audience: unknown is an error,
    # never a guess. Matching its raw text is only a filter for "may be affected".
    suspects = [app_id for app_id, raw in broken if name in str(raw)]
    if suspects:
        return Expected(
            error=f"Vault application {', '.join(sorted(suspects))} has an invalid audiences"
            " value (not a JSON array): members of this audience cannot be read"
        )
    addresses: list[str] = unpack(emails)
    stamps: list[str | None] = unpack(added_at)
    if not emails.isascii():  # SQLite folds and trims ASCII only: "É" must match "é" too
        pairs = [(a.strip().lower(), t) for a, t in zip(addresses, stamps, strict=True)]
        addresses, stamps = [a for a, _ in pairs if a], [t for a, t in pairs if a]
    return Expected(members=earliest(addresses, stamps))
