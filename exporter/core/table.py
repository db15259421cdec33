"""Human tables for the terminal, from the same documents the API serves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from exporter.core.model import Side, SyncOutcome
from exporter.core.provider import CLOUDFLARE_ACCESS, provider_word


def drift_table(document: dict[str, Any]) -> str:
    rows = [("AUDIENCE", "NAMESPACE", "STATUS", "EXPECTED", "ACTUAL", "MISSING", "EXTRA", "LEVEL")]
    notes: list[str] = []
    for item in document["items"]:
        details = item.get("drift_details") or {}
        rows.append(
            (
                item["audience"],
                item["namespace"],
                item["status"],  # the names of the JSON, the API, /metrics and the page
                str(item["expected_count"]),
                str(item["actual_count"]),
                str(details.get("missing_total", 0)),
                str(details.get("extra_total", 0)),
                item["alert_level"] + (" (ignored)" if item["ignored_until"] else ""),
            )
        )
        notes.extend(_notes(item, details))
    summary = document["summary"]
    footer = (
        f"{summary['total']} audiences: {summary['synced']} in sync, {summary['drift']} drift,"
        f" {summary['error']} error, {summary['pending']} pending"
        f" (checked {document['last_check'] or 'never'})"
    )
    return "\n".join([_columns(rows), "", *notes, footer])


def _notes(item: dict[str, Any], details: dict[str, Any]) -> list[str]:
    name, where = item["audience"], provider_word(item.get("provider", CLOUDFLARE_ACCESS))
    lines = [f"{name}: missing in {where}: {e}" for e in details.get("missing", [])]
    lines += [f"{name}: extra in {where}: {e}" for e in details.get("extra", [])]
    for kind in Side:
        more = details.get(f"{kind}_total", 0) - len(details.get(kind, []))
        if more > 0:
            lines.append(f"{name}: and {more} more {kind}")
    if item.get("error_message"):
        lines.append(f"{name}: error: {item['error_message']}")
    if item["status"] == "pending":
        lines.append(f"{name}: no {where} group yet (create it: POST /iam/drift/groups)")
    return lines


def sync_table(outcomes: Iterable[SyncOutcome], dry_run: bool) -> str:
    lines = []
    for outcome in outcomes:
        verb = f"would be {outcome.result}" if dry_run else str(outcome.result)
        lines.append(
            f"{outcome.audience}: {verb}: +{len(outcome.added)} -{len(outcome.removed)}"
            + (f" ({outcome.reason})" if outcome.reason else "")
        )
        lines += [f"  + {email}" for email in outcome.added]
        lines += [f"  - {email}" for email in outcome.removed]
    return "\n".join(lines) if lines else "nothing to sync"


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
