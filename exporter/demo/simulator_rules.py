"""Which access rules the simulated Cloudflare accepts in a group's include, exclude and require.

A rule is an object with exactly one key, its type, whose value is an object. The types are
the 19 of ``access_rule`` in Cloudflare's OpenAPI spec (2024-08-06), plus the 7 that the
rule union of the newer API has beside them (cloudflare-python 5.9.0): Cloudflare accepts
both. A test checking that unknown rules pass through verbatim declares its "future" type on
the simulator (``CloudflareSimulator.future_rule_types``). An ``email`` rule must hold an
address (the spec's ``format: email``). The other types' fields are not checked: their shapes
changed between the two versions of the API (``connection_id`` became
``identity_provider_id``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

SPEC_RULE_TYPES = (
    "email",
    "email_list",
    "email_domain",
    "everyone",
    "ip",
    "ip_list",
    "certificate",
    "group",
    "azureAD",
    "github-organization",
    "gsuite",
    "okta",
    "saml",
    "service_token",
    "any_valid_service_token",
    "external_evaluation",
    "geo",
    "auth_method",
    "device_posture",
)
NEWER_RULE_TYPES = (
    "auth_context",
    "common_name",
    "login_method",
    "oidc",
    "linked_app_token",
    "user_risk_score",
    "cloudflare_account_member",
)
KNOWN_RULE_TYPES = frozenset(SPEC_RULE_TYPES + NEWER_RULE_TYPES)

# One address: a local part, one "@", a domain, and no white space around or inside (the
# HTML form of ``format: email`` also takes a domain without a dot).
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


def refused_rule(rule: Any, future_types: Collection[str] = ()) -> str | None:
    """Why Cloudflare would refuse ``rule``, or None when it accepts it."""
    if not isinstance(rule, dict) or len(rule) != 1:
        return "a rule is an object with exactly one key, its type"
    [(kind, value)] = rule.items()
    if kind not in KNOWN_RULE_TYPES and kind not in future_types:
        return f"unknown rule type {kind!r}"
    if not isinstance(value, dict):
        return f"the value of a {kind!r} rule is an object"
    if kind == "email":
        address = value.get("email")
        if not isinstance(address, str) or _ADDRESS.fullmatch(address) is None:
            return f"not an email address: {address!r}"
    return None


def first_refused(
    lists: dict[str, list[Any]], future_types: Collection[str] = ()
) -> tuple[str, str] | None:
    """``(JSON pointer, reason)`` of the first rule Cloudflare would refuse, if any."""
    for key, rules in lists.items():
        for index, rule in enumerate(rules):
            reason = refused_rule(rule, future_types)
            if reason is not None:
                return f"/{key}/{index}", reason
    return None
