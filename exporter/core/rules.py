"""Cloudflare's rules in the domain's terms: which rules are member emails, what an Access
group gives (``actual_of``), and what stays beside the members (docs/design.md, "Actual
members")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

from exporter.core.model import Actual, Group, OtherRule, Rule


def email_of(rule: Rule) -> str | None:
    """The lowercased address of an ``email`` rule, None for every other rule."""
    body = rule.get("email") if len(rule) == 1 else None
    if type(body) is dict or isinstance(body, Mapping):  # the exact-type test is the fast path
        address = body.get("email")
        if type(address) is str and address.strip():
            return address.strip().lower()
    return None


def domain_of(rule: Rule) -> str | None:
    """The lowercased domain of an ``email_domain`` rule, None for every other rule."""
    body = rule.get("email_domain") if len(rule) == 1 else None
    if isinstance(body, Mapping):
        domain = body.get("domain")
        if type(domain) is str and domain.strip():
            return domain.strip().lower()
    return None


def email_members(include: Iterable[Rule]) -> set[str]:
    """The addresses of a list's email rules (of include: members, unless excluded)."""
    return {email for rule in include if (email := email_of(rule)) is not None}


def other_rules(include: Iterable[Rule]) -> list[Rule]:
    """Every include rule that is not a member email, verbatim and in order."""
    return [rule for rule in include if email_of(rule) is None]


def rules_beside_members(group: Group) -> tuple[OtherRule, ...]:
    """What the document shows as "other rules": include's non-email rules, then every rule
    of exclude and of require, each marked with its list."""
    return (
        *(OtherRule("include", rule) for rule in other_rules(group.include)),
        *(OtherRule("exclude", rule) for rule in group.exclude),
        *(OtherRule("require", rule) for rule in group.require),
    )


def members_of(actual: Actual) -> tuple[Set[str], set[str]]:
    """(members, excluded): include's email addresses minus those an exclude email rule names.

    Exclusions are rare: without any, the include addresses are returned as they are.
    """
    assert actual.group is not None
    group = actual.group
    have = actual.emails if actual.emails is not None else email_members(group.include)
    excluded = email_members(group.exclude) if group.exclude else set()
    if excluded and not have.isdisjoint(excluded):
        have = have - excluded
    return have, excluded


def domains_of(include: Iterable[Rule]) -> set[str]:
    """The domains of include's email_domain rules, lowercased."""
    return {domain for rule in include if (domain := domain_of(rule)) is not None}


def covering(email: str, domains: set[str]) -> str | None:
    domain = email.rpartition("@")[2]
    return domain if domain in domains else None


def actual_of(group: Group) -> Actual:
    """Cloudflare's side with member emails extracted and only the other rules kept.

    One pass over the rules (a full check sees a million of them); ``email_of`` decides.
    """
    emails: set[str] = set()
    others: list[Rule] = []
    for rule in group.include:
        email = email_of(rule)
        if email is None:
            others.append(rule)
        else:
            emails.add(email)
    return Actual(
        group=Group(group.id, group.name, others, group.exclude, group.require),
        emails=frozenset(emails),
    )
