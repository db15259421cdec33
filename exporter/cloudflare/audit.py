"""Cloudflare's account audit log (v1): the entries about the audiences' Access groups.

``GET /accounts/{account_id}/audit_logs?since=&before=&direction=asc&per_page=&page=``
(operation ``audit-logs-get-account-audit-logs`` of Cloudflare's OpenAPI schema; what was
verified, and why v1 rather than ``/logs/audit``, is in ``docs/attribution.md``). An entry:
``id``, ``when`` (RFC 3339), ``action`` {``type``, ``result``}, ``actor`` {``id``, ``email``,
``ip``, ``type``}, ``interface`` (``UI`` for the dashboard, ``API``), ``resource`` {``id``,
``type``}, ``oldValue`` / ``newValue`` (strings, often empty) and ``oldValueJson`` /
``newValueJson`` (objects). Pages are numbered; ``result_info`` says the page size served.

Same session, token, 429 gate and budget as the Access calls (``client.py``); requests are
counted apart (``api="audit"`` on /metrics). Pages are parsed as they arrive, one entry at a
time, and an entry about any other resource is dropped at once: an entry may carry two
copies of a 1,000-rule group. A malformed entry is skipped (it names nobody); a malformed
page raises ``CloudflareError``, like any failed call.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import requests

from exporter.cloudflare.ratelimit import ClientStats, RateLimitGate, scrub
from exporter.cloudflare.stream import CHUNK_BYTES, EnvelopeStream, NotAnObject, NotJson
from exporter.cloudflare.wire import (
    CloudflareError,
    PageInfo,
    decode,
    first_error,
)
from exporter.core.attribution import GroupChange
from exporter.core.rules import email_members
from exporter.core.times import format_time, parse_time

log = logging.getLogger("vault_drift.cloudflare.audit")

AUDIT_PATH = "/audit_logs"
PER_PAGE = 1000  # the schema's maximum for per_page (default 100)
# One listing reads at most this many pages; since they come oldest first, the rest is read
# by the next cycle from where this one stopped.
MAX_PAGES = 20
_ABSENT = frozenset({"__absent__"})  # a value the entry does not carry (not an unreadable one)


@dataclass(frozen=True)
class AuditListing:
    """The entries of one listing about the wanted groups; ``read_until`` is how far the log
    is known complete (``before``, or the last entry read when the page cap cut it short;
    None when the answer's order cannot be trusted to say)."""

    changes: list[GroupChange]
    read_until: datetime | None
    pages: int
    entries: int  # every entry read, about any resource
    skipped: int  # malformed entries
    newest: datetime | None = None  # the newest ``when`` of any entry read (the feed's cursor)


class AuditLogReader:
    """The account audit log, for one account and token. Thread-safe like the client."""

    def __init__(
        self,
        *,
        account_url: str,
        token: str,
        session: requests.Session,
        gate: RateLimitGate,
        stats: ClientStats,
        timeout: float = 30.0,
        per_page: int = PER_PAGE,
        max_pages: int = MAX_PAGES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = f"{account_url}{AUDIT_PATH}"
        self._token = token
        self._session, self._gate, self.stats = session, gate, stats
        self._timeout, self._per_page, self._max_pages = timeout, per_page, max_pages
        self._clock = clock

    def __repr__(self) -> str:
        return f"AuditLogReader({self._url!r}, token=<redacted>)"

    def group_changes(
        self, since: datetime, before: datetime, group_ids: Collection[str]
    ) -> AuditListing:
        """The entries of ``[since, before]`` about ``group_ids``, oldest first, by pages."""
        wanted = frozenset(group_ids)
        changes: list[GroupChange] = []
        seen: set[str] = set()
        last: datetime | None = None
        ordered, entries, skipped = True, 0, 0
        newest: datetime | None = None
        for page in range(1, self._max_pages + 1):
            stream, info = self._page(since, before, page)
            for item in stream:
                entries += 1
                newest = _newer(newest, item)
                change = group_change_from_json(item, wanted)
                if change is None:
                    skipped += _malformed(item)
                    continue
                if change.audit_log_id in seen:
                    continue  # the same entry on two pages: the log moved under us
                seen.add(change.audit_log_id)
                ordered = ordered and (last is None or change.at >= last)
                last = change.at if last is None else max(last, change.at)
                changes.append(change)
            count, page_info = info()
            if _is_last_page(count, page, page_info, self._per_page):
                return AuditListing(changes, before, page, entries, skipped, newest)
        # Cut short by the page cap: complete up to the last entry read, if oldest came first.
        until = _last_read(changes, ordered)
        log.info("audit log: %d pages read, the rest is read by the next cycle", self._max_pages)
        return AuditListing(changes, until, self._max_pages, entries, skipped, newest)

    # -- plumbing -------------------------------------------------------------------------

    def _page(
        self, since: datetime, before: datetime, page: int
    ) -> tuple[Iterator[Any], Callable[[], tuple[int, PageInfo]]]:
        params = {
            "since": format_time(since),
            "before": format_time(before),
            "direction": "asc",
            "per_page": self._per_page,
            "page": page,
        }
        request = f"GET {AUDIT_PATH}?{urlencode(params)}"
        response = self._get(params, request)
        status = response.status_code
        if status >= 300:
            raise self._failed(response, request)
        stream = EnvelopeStream(_chunks(response, request))

        def items() -> Iterator[Any]:
            try:
                yield from stream
            except NotJson:
                raise CloudflareError(
                    "invalid JSON in response", status=status, request=request
                ) from None
            except NotAnObject:
                raise CloudflareError(
                    "response is not a Cloudflare envelope", status=status, request=request
                ) from None
            finally:
                response.close()

        def info() -> tuple[int, PageInfo]:
            fields = stream.fields
            if not isinstance(fields.get("success"), bool) or not stream.has_list:
                raise CloudflareError(
                    "audit log answer is not a listing", status=status, request=request
                )
            if not fields["success"]:
                code, message = first_error(fields)
                reason = scrub(message, self._token) or "request failed"
                raise CloudflareError(reason, status=status, code=code, request=request)
            return stream.item_count, PageInfo.parse(fields.get("result_info"), page, request)

        return items(), info

    def _get(self, params: dict[str, Any], request: str) -> requests.Response:
        self._gate.take_turn(self._timeout, request)
        started = self._clock()
        try:
            response = self._session.get(
                self._url,
                params=params,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=(self._timeout, self._timeout),
                stream=True,
            )
        except requests.RequestException as exc:
            self.stats.count_audit_request("GET", None)
            reason = f"connection error ({type(exc).__name__})"
            raise CloudflareError(reason, request=request) from exc
        retries = getattr(getattr(response.raw, "retries", None), "history", ())
        for attempt in retries:
            self.stats.count_audit_request("GET", attempt.status)
        self.stats.count_audit_request("GET", response.status_code)
        if response.status_code == 429:
            raise self._gate.rate_limited(response, request, self._token)
        self._gate.on_success(started)
        self.stats.record_ratelimit_header(response.headers.get("Ratelimit"))
        return response

    def _failed(self, response: requests.Response, request: str) -> CloudflareError:
        document = decode(response)
        code, message = first_error(document)
        reason = scrub(message, self._token) or response.reason or "request failed"
        return CloudflareError(reason, status=response.status_code, code=code, request=request)


def _chunks(response: requests.Response, request: str) -> Iterator[bytes]:
    try:
        yield from response.iter_content(CHUNK_BYTES)
    except requests.RequestException as exc:
        reason = f"connection error while reading the answer ({type(exc).__name__})"
        raise CloudflareError(reason, status=response.status_code, request=request) from exc


def _is_last_page(count: int, page: int, info: PageInfo, asked: int) -> bool:
    page_size = info.per_page if info.per_page is not None else asked
    if count == 0 or count < page_size:
        return True
    return info.total_pages is not None and page >= info.total_pages


def _last_read(changes: list[GroupChange], ordered: bool) -> datetime | None:
    if not ordered:
        return None
    return changes[-1].at if changes else None


def _newer(newest: datetime | None, item: Any) -> datetime | None:
    at = parse_time(_text(item.get("when"))) if isinstance(item, dict) else None
    if at is None:
        return newest
    return at if newest is None else max(newest, at)


def _malformed(item: Any) -> int:
    """1 when an entry is not one (no id or time): it is skipped, never fatal."""
    if not isinstance(item, dict):
        return 1
    return int(not isinstance(item.get("id"), str) or parse_time(_text(item.get("when"))) is None)


# -- one entry -------------------------------------------------------------------------------


def group_change_from_json(item: Any, group_ids: Collection[str]) -> GroupChange | None:
    """The entry as a ``GroupChange`` when it is about one of ``group_ids``; None for an entry
    about anything else, or one without an id, a time or a resource id."""
    if not isinstance(item, dict):
        return None
    resource = item.get("resource")
    group_id = _text(resource.get("id")) if isinstance(resource, dict) else None
    if group_id is None or group_id not in group_ids:
        return None
    log_id, at = _text(item.get("id")), parse_time(_text(item.get("when")))
    if log_id is None or at is None:
        return None
    actor, action = _object(item.get("actor")), _object(item.get("action"))
    kind = _text(action.get("type"))
    added, removed = member_changes(item, kind)
    email = _text(actor.get("email"))
    return GroupChange(
        audit_log_id=log_id,
        group_id=group_id,
        at=at,
        actor_email=email.lower() if email else None,
        actor_id=_text(actor.get("id")),
        actor_type=_text(actor.get("type")),
        token_id=_text(actor.get("token_id")),
        interface=_text(item.get("interface")),
        action=kind,
        added=added,
        removed=removed,
    )


def member_changes(
    item: dict[str, Any], action: str | None
) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """The include list's email members the entry added and removed, from its before and
    after values; (None, None) when a value it needs is missing, cut short or not JSON."""
    old = _members(item, "oldValueJson", "oldValue")
    new = _members(item, "newValueJson", "newValue")
    verb = (action or "").lower()
    if old is _ABSENT and verb in ("create", "add"):
        old = frozenset()
    if new is _ABSENT and verb in ("delete", "remove"):
        new = frozenset()
    if old is None or new is None or old is _ABSENT or new is _ABSENT:
        return None, None
    return new - old, old - new


def _members(item: dict[str, Any], json_key: str, text_key: str) -> frozenset[str] | None:
    """A value's include emails; ``_ABSENT`` when the entry carries no such value; None when it
    carries one that cannot be read (truncated, not JSON, no include list)."""
    value = item.get(json_key)
    if value in (None, {}, ""):
        text = item.get(text_key)
        if text in (None, ""):
            return _ABSENT
        if not isinstance(text, str):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
    include = value.get("include") if isinstance(value, dict) else value
    if not isinstance(include, list) or not all(isinstance(rule, dict) for rule in include):
        return None
    return frozenset(email_members(include))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
