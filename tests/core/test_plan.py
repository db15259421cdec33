"""Sync plans and guards: non-email rules survive, guards refuse what docs/design.md says ("Sync and its guards")."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.core.drift import diff
from exporter.core.model import Group
from exporter.core.plan import (
    EMPTY_SOURCE,
    MASS_REMOVAL,
    OVER_RULE_LIMIT,
    email_rule,
    excluded_reason,
    no_account_reason,
    not_address_reason,
    plan_sync,
    removal_allowance,
)
from exporter.core.rules import email_members, email_of, other_rules

addresses = st.from_regex(r"[a-z]{1,8}@[a-z]{1,5}\.(com|org)", fullmatch=True)
other = st.sampled_from(
    [
        {"email_domain": {"domain": "x.com"}},
        {"everyone": {}},
        {"group": {"id": "g-42"}},
        {"ip": {"ip": "10.0.0.0/8"}},
        {"service_token": {"token_id": "t"}},
        {"brand_new_rule": {"anything": [1, 2]}},
    ]
)
includes = st.lists(st.one_of(addresses.map(email_rule), other), max_size=30)


def group(include: list[dict], exclude=(), require=()) -> Group:  # type: ignore[no-untyped-def]
    return Group("g1", "lms", include, list(exclude), list(require))


@given(includes, st.lists(addresses, max_size=30))
def test_a_full_plan_changes_only_the_diff_and_then_matches(include, expected) -> None:  # type: ignore[no-untyped-def]
    plan = plan_sync("lms", group(include), expected, force=True)
    assert other_rules(plan.new_include) == other_rules(include)
    kept = [rule for rule in include if email_of(rule) not in plan.removed]
    assert plan.new_include == kept + [email_rule(e) for e in plan.added]
    missing, extra = diff(expected, email_members(plan.new_include))
    assert (missing, extra) == ([], [])  # applying the plan, then diffing: synced


@given(includes, st.lists(addresses, max_size=30))
def test_an_add_only_plan_never_removes(include, expected) -> None:  # type: ignore[no-untyped-def]
    plan = plan_sync("lms", group(include), expected, add_only=True, force=True)
    assert plan.removed == ()
    assert plan.new_include[: len(include)] == include
    assert set(e.lower() for e in expected) <= email_members(plan.new_include)


def test_exclude_require_and_name_come_back_unchanged() -> None:
    g = group(
        [email_rule("a@x.com")],
        exclude=[{"email": {"email": "bad@x.com"}}],
        require=[{"geo": {"country_code": "FR"}}],
    )
    plan = plan_sync("lms", g, ["b@x.com"])
    assert plan.group is g and plan.added == ("b@x.com",) and plan.removed == ("a@x.com",)


def test_empty_source_is_blocked_unless_forced() -> None:
    g = group([email_rule("a@x.com")])
    assert plan_sync("lms", g, []).blocked == EMPTY_SOURCE
    assert plan_sync("lms", g, [], force=True).blocked is None
    assert plan_sync("lms", group([]), []).blocked is None  # nothing to lose


def test_mass_removal_is_max_5_or_10_percent() -> None:
    assert removal_allowance(10) == 5 and removal_allowance(200) == 20
    members = [f"u{i}@x.com" for i in range(100)]
    g = group([email_rule(m) for m in members])
    keep_90 = plan_sync("lms", g, members[:90])  # removes 10 of 100: allowed (10%)
    keep_89 = plan_sync("lms", g, members[:89])  # removes 11: blocked
    assert keep_90.blocked is None
    assert keep_89.blocked == MASS_REMOVAL and "11 of 100" in (keep_89.blocked_detail or "")
    assert plan_sync("lms", g, members[:89], force=True).blocked is None
    small = group([email_rule(m) for m in members[:7]])
    assert plan_sync("lms", small, members[:2]).blocked is None  # 5 removals: allowed
    assert plan_sync("lms", small, members[:1]).blocked == MASS_REMOVAL


def test_the_rule_limit_is_refused_even_with_force() -> None:
    wanted = [f"u{i}@x.com" for i in range(1000)]
    g = group([{"everyone": {}}])
    plan = plan_sync("lms", g, wanted, force=True)
    assert plan.blocked == OVER_RULE_LIMIT and "1001 rules" in (plan.blocked_detail or "")
    assert plan_sync("lms", group([]), wanted, force=True).blocked is None  # exactly 1,000


def test_a_sync_changes_only_the_diff_in_an_interleaved_mixed_case_group() -> None:
    include = [
        email_rule("Alice@X.com"),
        {"ip": {"ip": "10.0.0.0/8"}},
        email_rule("gone@x.com"),
        email_rule("  Bob@x.com"),
        {"email_domain": {"domain": "y.com"}},
        email_rule("GONE2@x.com"),
        email_rule("carol@x.com"),
    ]
    plan = plan_sync(
        "lms", group(include), ["alice@x.com", "bob@x.com", "carol@x.com", "dan@x.com"]
    )
    assert plan.blocked is None
    assert plan.added == ("dan@x.com",) and plan.removed == ("gone2@x.com", "gone@x.com")
    assert plan.new_include == [
        email_rule("Alice@X.com"),
        {"ip": {"ip": "10.0.0.0/8"}},
        email_rule("  Bob@x.com"),
        {"email_domain": {"domain": "y.com"}},
        email_rule("carol@x.com"),
        email_rule("dan@x.com"),
    ]


def test_excluded_members_are_named_never_touched_in_exclude() -> None:
    g = group(
        [email_rule("a@x.com"), email_rule("Barred@x.com"), email_rule("ex@x.com")],
        exclude=[email_rule("barred@x.com"), email_rule("ex@x.com"), email_rule("new@x.com")],
    )
    plan = plan_sync("lms", g, ["a@x.com", "barred@x.com", "new@x.com"])
    # ex@x.com is excluded, so not a member: not extra, its include rule stays
    assert plan.removed == () and plan.added == ("new@x.com",)
    assert plan.excluded == ("barred@x.com", "new@x.com")
    assert plan.new_include == [*g.include, email_rule("new@x.com")]
    assert "excluded in Cloudflare: remove the exclusion by hand" in (excluded_reason(plan) or "")
    assert "barred@x.com, new@x.com" in (excluded_reason(plan) or "")
    assert excluded_reason(plan_sync("lms", g, ["a@x.com"])) is None


def test_an_expected_email_that_is_not_an_address_is_never_added() -> None:
    g = group([email_rule("a@x.com")])
    plan = plan_sync("lms", g, ["a@x.com", "b@x.com", "b c@x.com", "no-at-sign", "d@@x.com"])
    assert plan.added == ("b@x.com",)
    assert plan.not_addresses == ("b c@x.com", "d@@x.com", "no-at-sign")
    assert plan.new_include == [email_rule("a@x.com"), email_rule("b@x.com")]
    assert "'b c@x.com', 'd@@x.com', 'no-at-sign'" in (not_address_reason(plan) or "")
    assert not_address_reason(plan_sync("lms", g, ["a@x.com"])) is None


def test_a_provider_without_rule_limit_and_with_accounts_adds_only_its_users() -> None:
    g = group([email_rule("ann@x.com")])
    wanted = ["ann@x.com", "bob@x.com", "zed@x.com", *(f"u{i}@x.com" for i in range(1100))]
    accounts = {"bob@x.com", *(f"u{i}@x.com" for i in range(1100))}
    plan = plan_sync("lms", g, wanted, rule_limit=None, accounts=accounts)
    assert plan.blocked is None  # no per-group limit: 1,102 members are fine
    assert "zed@x.com" not in plan.added and "bob@x.com" in plan.added
    assert plan.no_account == ("zed@x.com",)
    reason = no_account_reason(plan)
    assert reason == (
        "no AWS user with this email, never created (users come from SCIM): zed@x.com"
    )
    assert plan_sync("lms", g, wanted, accounts=accounts).blocked == OVER_RULE_LIMIT
