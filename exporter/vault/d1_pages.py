"""Expected members from D1 in pages of audiences, each answer under a byte budget.

The set-based query of ``membership.py`` runs over one page of audiences (ascending names)
named in one JSON parameter, and the query itself cuts its answer where the running size
passes the budget, so no answer comes near D1's limits (2 MB per value, 30 s per request)
whatever the estimate said. An audience whose page did not arrive is an error, never synced
or drift (docs/design.md, "The Vault on D1").
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.cloudflare.d1 import D1Client, D1Result
from exporter.cloudflare.wire import CloudflareError
from exporter.core.model import Expected
from exporter.vault import membership
from exporter.vault.store import VaultError

log = logging.getLogger("vault_drift.d1")

PAGE_BYTES = 8_000_000  # members' JSON per answer
GUESS_MEMBERS = 1_000  # an audience never read yet: Cloudflare's rule limit per group
GUESS_BYTES_PER_MEMBER = 48

# The page's audiences come as one JSON array parameter; the answer is cut where the running
# size passes the budget (the first audience always comes, whatever its size).
_PAGE = """
SELECT audience, emails, added_at, n, total FROM (
    SELECT audience, emails, added_at,
           sum(length(CAST(emails AS BLOB)) + length(CAST(added_at AS BLOB)))
               OVER (ORDER BY audience ROWS UNBOUNDED PRECEDING) AS running,
           row_number() OVER (ORDER BY audience) AS n,
           count(*) OVER () AS total
    FROM ({expected})
) WHERE running <= ? OR n = 1
ORDER BY audience
"""


_NAMED = "SELECT value FROM json_each(?)"
_EVERY_AUDIENCE = "SELECT audience FROM sys_infra_state"


@dataclass(frozen=True)
class Page:
    """The audiences of one page, ascending; None: every audience (a full check's first)."""

    names: list[str] | None


@dataclass(frozen=True)
class PageAnswer:
    """One page's members by audience, whether every audience of the page is in, and the
    malformed applications (the first page of a read only)."""

    page: list[str] | None
    got: dict[str, tuple[str, str]]
    complete: bool
    broken: list[tuple[str, str]] | None

    def starts(self, queue: list[str]) -> bool:
        """Whether this page is the first of a read of ``queue`` (ascending names)."""
        return self.page is None or queue[: len(self.page)] == self.page


class MemberPager:
    """Reads expected members page by page and learns each audience's size for the next read."""

    def __init__(self, client: D1Client, page_bytes: int = PAGE_BYTES) -> None:
        self.client = client
        self.page_bytes = page_bytes
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # audience -> bytes of its members, last read
        self._bytes_per_member = float(GUESS_BYTES_PER_MEMBER)
        self.pages_read = 0  # membership pages fetched (benchmarks)

    @property
    def member_bytes(self) -> int:
        """Bytes of members the last reads brought, over every audience (benchmarks)."""
        with self._lock:
            return sum(self._sizes.values())

    def expected_members(
        self,
        audiences: Iterable[str],
        counts: Mapping[str, int],
        first: PageAnswer | None = None,
    ) -> Mapping[str, Expected]:
        """``counts``: each audience's expected count at its last check (a first guess);
        ``first``: a first page already fetched (with a check's other reads), used when it
        starts where these audiences do."""
        names = sorted(dict.fromkeys(audiences))
        if not names:
            return {}
        packed: dict[str, tuple[str, str] | str] = {}
        broken: list[tuple[str, str]] | None = None
        queue = list(names)
        while queue:
            if first is not None and first.starts(queue):
                page, answer, first = first.page or queue, first, None
            else:
                page = self._next_page(queue, counts)
                try:
                    answer = self.read_page(page, with_broken=broken is None)
                except CloudflareError as exc:
                    if broken is None:  # not even the first answer: Vault is unreadable
                        raise VaultError(f"Vault unreadable: {exc}") from exc
                    message = f"Vault unreadable: D1 page of members did not arrive: {exc}"
                    log.warning("%s (%d audiences left unread)", message, len(queue))
                    packed.update({name: message for name in queue})
                    break
            broken = broken if answer.broken is None else answer.broken
            got = answer.got
            covered = page if answer.complete else [n for n in page if n <= max(got)]
            for name in covered:
                packed[name] = got.get(name, ("[]", "[]"))
            queue = queue[len(covered) :]
        self._learn(packed)
        return membership.unpacked_expected({n: packed[n] for n in names}, broken or [])

    def _next_page(self, queue: list[str], counts: Mapping[str, int]) -> list[str]:
        """The longest run of audiences whose estimated answer fits the budget (at least one)."""
        with self._lock:
            sizes, per = dict(self._sizes), self._bytes_per_member
        page: list[str] = []
        total = 0
        for name in queue:
            size = sizes.get(name) or int(counts.get(name, GUESS_MEMBERS) * per) + 8
            if page and total + size > self.page_bytes:
                break
            page.append(name)
            total += size
        return page

    def first_page(self, audiences: Collection[str] | None, counts: Mapping[str, int]) -> Page:
        """The first page a read of these audiences (None: every audience) starts with, to be
        sent with other reads (``page_statements``, then ``answer``)."""
        if audiences is None:
            return Page(None)
        return Page(self._next_page(sorted(dict.fromkeys(audiences)), counts))

    def page_statements(self, page: Page, with_broken: bool) -> list[tuple[str, Sequence[Any]]]:
        """The page's query (the first one with the malformed applications)."""
        if page.names is None:  # every audience there is, cut by size like any page
            query = _PAGE.format(expected=membership.expected_query(_EVERY_AUDIENCE))
            statements: list[tuple[str, Sequence[Any]]] = [(query, [self.page_bytes])]
        else:
            query = _PAGE.format(expected=membership.expected_query(_NAMED))
            statements = [(query, [json.dumps(page.names), self.page_bytes])]
        if with_broken:
            statements.append((membership.BROKEN_APPLICATIONS, []))
        return statements

    def answer(self, page: Page, results: Sequence[D1Result], with_broken: bool) -> PageAnswer:
        self.pages_read += 1
        rows = results[0].rows
        broken = [(row[0], row[1]) for row in results[1].rows] if with_broken else None
        got = {row[0]: (row[1], row[2]) for row in rows}
        complete = not rows or rows[-1][3] == rows[-1][4]
        return PageAnswer(page.names, got, complete, broken)

    def read_page(self, page: list[str], with_broken: bool) -> PageAnswer:
        """One page of members (the first one with the malformed applications, in one batch):
        the members found, whether every audience of the page is in, the applications."""
        statements = self.page_statements(Page(page), with_broken)
        return self.answer(Page(page), self.client.batch(statements), with_broken)

    def _learn(self, packed: Mapping[str, tuple[str, str] | str]) -> None:
        sizes = {
            name: len(value[0].encode()) + len(value[1].encode())
            for name, value in packed.items()
            if not isinstance(value, str)
        }
        members = sum(
            value[0].count('","') + 1
            for value in packed.values()
            if not isinstance(value, str) and value[0] != "[]"
        )
        with self._lock:
            self._sizes.update(sizes)
            if members:
                self._bytes_per_member = max(16.0, sum(sizes.values()) / members)
