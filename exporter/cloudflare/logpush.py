"""Cloudflare Logpush deliveries of the account ``audit_logs`` dataset, as the change feed
reads them (README, "Change feed"; docs/feed.md).

A delivery is a POST whose body is newline-delimited JSON, gzip-compressed by default. Each
line is one record with the dataset's fields (Cloudflare's Logpush documentation, "Audit
Logs" dataset, https://developers.cloudflare.com/logs/logpush/logpush-job/datasets/account/audit_logs/):
``ID``, ``When`` (int or string, by the job's ``timestamp_format``), ``ActionType``,
``ActionResult``, ``ActorEmail``, ``ActorID``, ``ActorIP``, ``ActorType``, ``Interface``,
``ResourceID``, ``ResourceType``, ``OldValue`` / ``NewValue`` (objects), ``OwnerID``,
``Metadata``. Each record is turned into the audit log API's (v1) shape, so that one parser
(``audit.group_change_from_json``) reads both. When a job is created Logpush sends a test
delivery whose lines are no audit entries: it is answered like any other, with nothing to do.
Pure: no I/O.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_BODY_BYTES = 64 * 1024 * 1024  # decompressed; a delivery is a few MB at most
GZIP_MAGIC = b"\x1f\x8b"


class DeliveryError(ValueError):
    """A body that is neither gzip nor text, or too large once decompressed."""


@dataclass
class Delivery:
    entries: list[dict[str, Any]] = field(default_factory=list)  # v1-shaped audit entries
    other: int = 0  # JSON lines that are no audit entry (the test delivery's)
    malformed: int = 0  # lines that are not a JSON object


def parse_delivery(body: bytes) -> Delivery:
    """The records of one delivery, each line on its own: a bad line never spoils the rest."""
    text = _decompressed(body)
    delivery = Delivery()
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            delivery.malformed += 1
            continue
        if not isinstance(record, dict):
            delivery.malformed += 1
            continue
        entry = entry_from_record(record)
        if entry is None:
            delivery.other += 1
        else:
            delivery.entries.append(entry)
    return delivery


def _decompressed(body: bytes) -> str:
    if body.startswith(GZIP_MAGIC):
        try:
            data = _gunzip(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise DeliveryError(f"the gzip body cannot be read ({type(exc).__name__})") from None
    else:
        data = body
    if len(data) > MAX_BODY_BYTES:
        raise DeliveryError(f"the delivery is larger than {MAX_BODY_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryError("the delivery is not UTF-8 text") from None


def _gunzip(body: bytes) -> bytes:
    """Decompressed, but never more than the cap (a small body may expand a thousandfold)."""
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
        data = stream.read(MAX_BODY_BYTES + 1)
    return data


def entry_from_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """A dataset record as an audit-log (v1) entry; None for a line that is not one (no
    ``ID``, ``When`` or ``ResourceID``)."""
    log_id, resource_id = record.get("ID"), record.get("ResourceID")
    when = _when(record.get("When"))
    if not isinstance(log_id, str) or not isinstance(resource_id, str) or when is None:
        return None
    entry: dict[str, Any] = {
        "id": log_id,
        "when": when,
        "action": {"type": record.get("ActionType"), "result": record.get("ActionResult")},
        "actor": {
            "id": record.get("ActorID"),
            "email": record.get("ActorEmail"),
            "ip": record.get("ActorIP"),
            "type": record.get("ActorType"),
        },
        "interface": record.get("Interface"),
        "resource": {"id": resource_id, "type": record.get("ResourceType")},
        "owner": {"id": record.get("OwnerID")},
    }
    for name, key in (("oldValue", "OldValue"), ("newValue", "NewValue")):
        value = record.get(key)
        if isinstance(value, dict):
            entry[f"{name}Json"] = value
        elif isinstance(value, str):
            entry[name] = value
    return entry


def _when(value: Any) -> str | None:
    """RFC 3339 from the job's ``timestamp_format``: ``rfc3339`` text, or a Unix time in
    seconds or nanoseconds (``unix``, ``unixnano``; milliseconds too, by size)."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        moment = datetime.fromtimestamp(_seconds(float(value)), UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: float) -> float:
    """Seconds from a Unix time given in s, ms, µs or ns (told apart by magnitude)."""
    for limit, scale in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):
        if abs(value) >= limit:
            return value / scale
    return value
