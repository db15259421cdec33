"""The reads of one check (``CheckReads``): asked one by one on a file, fetched in one request
on D1 (docs/design.md, "The Vault on D1").

On D1 each request counts against Cloudflare's API budget, and a check used to make seven
reads. ``BatchedReads`` sends them as one ``batch`` when the check starts: the audiences,
the settings, the first page of members, the drift memory, the exemptions, the ignores and
the revocation totals. The read functions are the ones both backends use: each is run once
against a recorder to learn its statements, then again against the batch's answers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from exporter.cloudflare.d1 import D1Client, D1Result
from exporter.cloudflare.wire import CloudflareError
from exporter.core.exemptions import Exemption
from exporter.core.exposure import LatencyTotals
from exporter.core.model import Audience, DriftMemory, Expected, Ignore
from exporter.core.settings import Settings
from exporter.vault import decisions, exemptions, exposure, membership, state
from exporter.vault.d1_pages import MemberPager, PageAnswer
from exporter.vault.sql import Reader, RowsCursor
from exporter.vault.store import VaultError, VaultStore

COUNTS = "SELECT audience, expected_count FROM sys_infra_drift_state"


class D1Source(Protocol):
    """What ``BatchedReads`` needs of the D1 store."""

    client: D1Client
    pager: MemberPager

    def counts(self) -> dict[str, int]: ...
    def remember_counts(self, counts: dict[str, int]) -> None: ...
    def exemptions(
        self, ended_since: datetime | None = None
    ) -> dict[str, tuple[Exemption, ...]]: ...


class LiveReads:
    """Each read asked of the store when the check asks it (the SQLite file: as before)."""

    def __init__(self, store: VaultStore) -> None:
        self._store = store

    def audiences(self) -> list[Audience]:
        return self._store.audiences()

    def settings(self) -> Settings:
        return self._store.settings()

    def expected_members(self, audiences: Iterable[str]) -> Mapping[str, Expected]:
        return self._store.expected_members(audiences)

    def memories(self) -> dict[str, DriftMemory]:
        return self._store.memories()

    def exemptions(self, ended_since: datetime) -> dict[str, tuple[Exemption, ...]]:
        return self._store.exemptions(ended_since)

    def ignores(self) -> dict[str, Ignore]:
        return self._store.ignores()

    def revocation_totals(self) -> dict[tuple[str, str], LatencyTotals]:
        return self._store.revocation_totals()


class BatchedReads:
    """Everything a check reads, from one D1 batch sent when it starts. Members beyond the
    first page are read page by page, as always."""

    def __init__(
        self, store: D1Source, audiences: Collection[str] | None, ended_since: datetime
    ) -> None:
        self._store, self._since = store, ended_since
        pager = store.pager
        page = pager.first_page(audiences, store.counts())
        reads: list[Callable[[Reader], Any]] = [
            membership.list_audiences,
            lambda conn: conn.execute(COUNTS).fetchall(),
            decisions.load_settings,
            state.load_memories,
            lambda conn: exemptions.load_exemptions(conn, ended_since),
            decisions.load_ignores,
            exposure.revocation_totals,
        ]
        page_statements = pager.page_statements(page, with_broken=True)
        found, rest_results = batched(store.client, reads, page_statements)
        self._page: PageAnswer | None = pager.answer(page, rest_results, with_broken=True)
        audiences_read, counts, *rest = found
        self._audiences: list[Audience] = audiences_read
        store.remember_counts({name: int(n) for name, n in counts if n is not None})
        self._settings: Settings = rest[0]
        self._memories: dict[str, DriftMemory] = rest[1]
        self._exemptions: dict[str, tuple[Exemption, ...]] = rest[2]
        self._ignores: dict[str, Ignore] = rest[3]
        self._totals: dict[tuple[str, str], LatencyTotals] = rest[4]

    def audiences(self) -> list[Audience]:
        return self._audiences

    def settings(self) -> Settings:
        return self._settings

    def expected_members(self, audiences: Iterable[str]) -> Mapping[str, Expected]:
        first, self._page = self._page, None  # the page is the check's first read only
        return self._store.pager.expected_members(audiences, self._store.counts(), first)

    def memories(self) -> dict[str, DriftMemory]:
        return self._memories

    def exemptions(self, ended_since: datetime) -> dict[str, tuple[Exemption, ...]]:
        """Those read, less the ones that ended before ``ended_since`` (later than the
        batch's: the check's time is after its start)."""
        if ended_since < self._since:
            return self._store.exemptions(ended_since)
        kept = {
            audience: tuple(e for e in rows if e.ended_at is None or e.ended_at > ended_since)
            for audience, rows in self._exemptions.items()
        }
        return {audience: rows for audience, rows in kept.items() if rows}

    def ignores(self) -> dict[str, Ignore]:
        return self._ignores

    def revocation_totals(self) -> dict[tuple[str, str], LatencyTotals]:
        return self._totals


class _Recorder:
    """A ``Reader`` that answers nothing and keeps what it was asked."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, list[Any]]] = []

    def execute(self, sql: str, parameters: Any = (), /) -> RowsCursor:
        self.statements.append((sql, list(parameters)))
        return RowsCursor([], [])


class _Replay:
    """A ``Reader`` that answers a read function's statements from its share of the batch."""

    def __init__(self, statements: Sequence[tuple[str, list[Any]]], results: Sequence[D1Result]):
        self._answers = iter(zip(statements, results, strict=True))

    def execute(self, sql: str, parameters: Any = (), /) -> RowsCursor:
        expected, result = next(self._answers, ((None, None), None))
        if result is None or expected != (sql, list(parameters)):
            # A read whose statements depend on the rows it got cannot be batched this way.
            raise AssertionError(f"a batched read asked what it did not ask before: {sql!r}")
        return RowsCursor(result.columns, [tuple(row) for row in result.rows])


def batched(
    client: D1Client,
    reads: Sequence[Callable[[Reader], Any]],
    extra: Sequence[tuple[str, Sequence[Any]]] = (),
) -> tuple[list[Any], list[D1Result]]:
    """Read functions (whose statements do not depend on the rows they get), then ``extra``
    statements, in one batch: what each function returned, and the results of ``extra``."""
    recorded = [_statements(read) for read in reads]
    sent = [statement for statements in recorded for statement in statements]
    try:
        results = client.batch([*sent, *extra])
    except CloudflareError as exc:
        raise VaultError(f"Vault unreadable: {exc}") from exc
    found, at = [], 0
    for read, statements in zip(reads, recorded, strict=True):
        found.append(read(_Replay(statements, results[at : at + len(statements)])))
        at += len(statements)
    return found, results[at:]


def _statements(read: Callable[[Reader], Any]) -> list[tuple[str, list[Any]]]:
    recorder = _Recorder()
    read(recorder)
    return recorder.statements
