"""Why a member drifts, in words: the hints of the API, the page, the digest and the mail."""

from __future__ import annotations

from datetime import datetime, timedelta

from exporter.core.attribution import VAULT, attribution_words
from exporter.core.model import DriftMember, Side

RECENT = timedelta(minutes=30)
EXCLUDED_NOTE = "excluded in Cloudflare"
NO_ACCOUNT_NOTE = "no AWS user with this email"  # the provider has no user to add


def access_note(member: DriftMember) -> str | None:
    """What the group's other rules say about a missing member's access, in words."""
    if member.excluded:
        return EXCLUDED_NOTE
    if member.no_account:
        return NO_ACCOUNT_NOTE
    if member.domain_rule is not None:
        return f"has access through the domain rule {member.domain_rule}"
    return None


def member_note(member: DriftMember) -> str | None:
    """What explains a member in words, as reports show it beside the email (persisted with
    the member): the group's other rules first, then who changed it, with its date."""
    return access_note(member) or attribution_words(member, None)


def hint(member: DriftMember, now: datetime | None = None, where: str = "Cloudflare") -> str:
    """Why a member drifts, shown beside it: what the audit log says (its age measured from
    ``now``), else a short guess; ``where`` names the audience's provider ("AWS")."""
    note = access_note(member) or attribution_words(member, now)
    if note is not None:
        return note
    if member.kind == Side.MISSING:
        added = member.added_in_vault_at
        vault = member.attribution is not None and member.attribution.outcome == VAULT
        if vault or (added is not None and member.first_seen_at - added <= RECENT):
            return f"added in Vault recently: the push to {where} may not have run yet"
        return f"in Vault but not in {where}: push failed or removed by hand"
    return f"manually added? in {where} but not in Vault (or removed from Vault)"
