"""The simulated Cloudflare's account audit log (v1): ``GET /accounts/{acct}/audit_logs``.

What it models (Cloudflare's OpenAPI schema, operation ``audit-logs-get-account-audit-logs``,
and the entry Cloudflare's D1 docs show; see ``docs/attribution.md``):
- every write through the simulated API is an entry: ``action.type`` ``create`` / ``update`` /
  ``delete``, ``interface`` ``API``, the actor of the token that made it (``actor`` {``id``,
  ``email``, ``ip``, ``type``}); a dashboard edit (``CloudflareSimulator.set_include``) is an
  entry with ``interface`` ``UI`` and the person a test names;
- an entry carries the group before and after in ``oldValueJson`` / ``newValueJson`` and leaves
  ``oldValue`` / ``newValue`` empty, as Cloudflare's own example does; ``values`` makes new
  entries carry them as JSON text instead, cut short, not JSON, or not at all;
- the listing: ``since`` (inclusive) and ``before`` (exclusive), RFC 3339 or a date;
  ``direction`` ``desc`` (the default) or ``asc``; ``per_page`` 1..1000 (default 100; more is
  a 400 naming it, and ``per_page_cap`` may serve fewer); ``page``; ``result_info`` with
  ``page``, ``per_page``, ``count``, ``total_count``, ``total_pages``;
- a token refused the audit log (``denied_tokens``): 403, code 10000;
- late entries (``delay``): an entry keeps the time of its change in ``when`` but shows in
  the listing only ``delay`` later, as an entry written late into the log would (Cloudflare
  documents no bound; docs/feed.md). Entries of one second are common: ``when`` has
  milliseconds, and ``since`` / ``before`` compare to the millisecond;
- Logpush (``logpush``): each new entry is also delivered to a configured HTTP destination,
  as Cloudflare's Logpush does for the ``audit_logs`` dataset (``simulator_logpush.py``).

What it does not model: the other filters (``actor.email``, ``zone.name``, ``action.type``,
``id``, ``export``, ``hide_user_logs``), other resources' entries, the 18 months of retention.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.demo.simulator_wire import (
    Reply,
    authentication_error,
    encode,
    failure,
    invalid_parameter,
    positive_int,
    success,
)

MAX_PER_PAGE, DEFAULT_PER_PAGE = 1000, 100
VALUE_MODES = ("json", "text", "truncated", "not_json", "missing")


@dataclass(frozen=True)
class Actor:
    """Who a token (or a dashboard session) acts as, as the audit log names it."""

    email: str
    id: str = ""
    type: str = "user"
    ip: str = "198.51.100.7"

    def as_json(self) -> dict[str, str]:
        actor_id = self.id or uuid.uuid5(uuid.NAMESPACE_DNS, self.email).hex
        return {"id": actor_id, "email": self.email, "ip": self.ip, "type": self.type}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """The entries of one account, oldest first; thread-safe."""

    def __init__(
        self,
        account_id: str,
        *,
        per_page_cap: int = MAX_PER_PAGE,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.account_id = account_id
        self.per_page_cap = per_page_cap
        self.clock = clock
        self.values = "json"  # how new entries carry the group before and after
        self.delay = timedelta(0)  # how late new entries show in the listing
        self.logpush: Callable[[dict[str, Any]], None] | None = None  # a delivery per entry
        self._entries: list[tuple[datetime, dict[str, Any]]] = []
        self._visible: list[datetime] = []  # when each entry shows in the listing
        self._lock = threading.Lock()

    def record(
        self,
        action: str,
        group_id: str,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        actor: Actor,
        interface: str,
    ) -> dict[str, Any]:
        at = self.clock()
        entry: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "action": {"type": action, "result": True},
            "actor": actor.as_json(),
            "interface": interface,
            "metadata": {},
            **_values(old, new, self.values),
            "owner": {"id": self.account_id},
            "resource": {"id": group_id, "type": "access.group"},
            "when": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        with self._lock:
            self._entries.append((at, entry))
            self._visible.append(at + self.delay)
        if self.logpush is not None:
            self.logpush(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [entry for _, entry in self._entries]

    def listing(self, query: dict[str, list[str]]) -> Reply:
        page = positive_int(query, "page", 1)
        per_page = positive_int(query, "per_page", DEFAULT_PER_PAGE)
        if page is None:
            return invalid_parameter("page", 2**31 - 1)
        if per_page is None or per_page > MAX_PER_PAGE:
            return invalid_parameter("per_page", MAX_PER_PAGE)
        try:
            since, before = _time(query, "since"), _time(query, "before")
        except ValueError as exc:
            return _invalid(f"{exc} must be a date or an RFC 3339 timestamp")
        direction = (query.get("direction") or ["desc"])[-1]
        if direction not in ("asc", "desc"):
            return _invalid("direction must be asc or desc")
        now = self.clock()
        with self._lock:
            chosen = [
                e
                for (at, e), shown_from in zip(self._entries, self._visible, strict=True)
                if shown_from <= now
                and (since is None or at >= since)
                and (before is None or at < before)
            ]
        if direction == "desc":
            chosen.reverse()
        per_page = min(per_page, self.per_page_cap)
        start = (page - 1) * per_page
        shown = chosen[start : start + per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(shown),
            "total_count": len(chosen),
            "total_pages": math.ceil(len(chosen) / per_page),
        }
        return success(200, encode(shown), info)


def _invalid(message: str) -> Reply:
    chain = [{"code": 11000, "message": message}]
    return failure(400, 6008, "Invalid request parameters", error_chain=chain)


def denied() -> Reply:
    """A token without the audit log's permission (Account Settings Read)."""
    return authentication_error()


def _time(query: dict[str, list[str]], key: str) -> datetime | None:
    """The parameter as an aware time; None when absent; ValueError (naming it) when not a
    date or time."""
    values = query.get(key)
    if not values:
        return None
    text = values[-1].strip().replace("Z", "+00:00")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(key) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _values(old: dict[str, Any] | None, new: dict[str, Any] | None, mode: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "oldValue": "",
        "newValue": "",
        "oldValueJson": {},
        "newValueJson": {},
    }
    if mode == "missing":
        return fields
    if mode == "json":
        fields["oldValueJson"] = old or {}
        fields["newValueJson"] = new or {}
        return fields
    for key, value in (("oldValue", old), ("newValue", new)):
        if value is None:
            continue
        text = json.dumps(value)
        if mode == "truncated":
            text = text[: len(text) // 2]
        elif mode == "not_json":
            text = "include changed (details withheld)"
        fields[key] = text
    return fields
