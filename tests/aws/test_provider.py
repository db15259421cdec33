"""The AWS provider in the domain's terms, against moto's identity store."""

from __future__ import annotations

import pytest

from exporter.aws.identity_store import AwsError
from exporter.aws.local import LocalIdentityStore
from exporter.aws.provider import USER_RULE, IdentityCenter
from exporter.core.model import Audience
from exporter.core.plan import MASS_REMOVAL, no_account_reason
from exporter.core.provider import AWS_IDENTITY_CENTER, SyncMode, VerificationFailed
from tests.aws.aws_world import FakeTime
from tests.aws.faults import FaultProxy


def audience(name: str, group_id: str | None) -> Audience:
    return Audience(name, "default", AWS_IDENTITY_CENTER, group_id)


def test_capabilities_say_what_aws_cannot_do(provider: IdentityCenter) -> None:
    assert provider.name == "aws_identity_center"
    assert not provider.capabilities.session_revocation
    assert not provider.capabilities.attribution
    assert provider.capabilities.member_limit is None
    assert provider.capabilities.accounts_required


def test_a_full_read_lists_users_and_groups_once_then_each_group(
    store: LocalIdentityStore, provider: IdentityCenter, proxy: FaultProxy
) -> None:
    lms, crm, gone = store.add_group("lms"), store.add_group("crm"), store.add_group("old")
    ann = store.add_user("Ann@Corp.Example")
    bob = store.add_user(
        None,
        user_name="bob",
        Emails=[{"Value": "bob.old@corp.example"}, {"Value": "Bob@Corp.Example", "Primary": True}],
    )
    robot = store.add_user(None, user_name="robot")
    for user in (ann, bob, robot):
        store.add_member(lms, user)
    store.add_member(crm, ann)
    store.add_member(crm, ann)  # moto accepts a second membership of one user (AWS would not)
    store.delete_group(gone)
    listing = provider.actual_members(
        [audience("lms", lms), audience("crm", crm), audience("old", gone), audience("new", None)]
    )
    assert listing.error is None
    assert set(listing.actual) == {"lms", "crm", "old"}
    got = listing.actual["lms"]
    assert got.emails == {"ann@corp.example", "bob@corp.example"}
    assert got.group is not None and got.group.include == [{USER_RULE: {"user_id": robot}}]
    assert got.accounts == {"ann@corp.example", "bob@corp.example"}
    assert listing.actual["crm"].emails == {"ann@corp.example"}
    assert listing.actual["old"].group is None and listing.actual["old"].error is None
    assert proxy.calls["ListUsers"] == 1 and proxy.calls["ListGroups"] == 1
    assert proxy.calls["ListGroupMemberships"] == 2  # the deleted group is not asked for


def test_one_audience_read_directly_reuses_the_cycles_users(
    store: LocalIdentityStore, provider: IdentityCenter, proxy: FaultProxy, fake_time: FakeTime
) -> None:
    lms = store.add_group("lms")
    store.add_member(lms, store.add_user("ann@corp.example"))
    provider.actual_members([audience("lms", lms)])
    assert provider.actual_of(audience("lms", lms)).emails == {"ann@corp.example"}
    assert proxy.calls["ListUsers"] == 1
    fake_time.now += 61  # past users_max_age: listed again
    provider.actual_of(audience("lms", lms))
    assert proxy.calls["ListUsers"] == 2
    assert provider.actual_of(audience("x", "no-such-group")).group is None


def test_aws_unreachable_fails_the_listing_and_every_audience(
    store: LocalIdentityStore, provider: IdentityCenter, proxy: FaultProxy
) -> None:
    proxy.fail("ListUsers", times=1, status=403, code="AccessDeniedException")
    listing = provider.actual_members([audience("lms", "g1"), audience("crm", "g2")])
    assert listing.error is not None and "AccessDeniedException" in listing.error
    assert all(a.error == listing.error for a in listing.actual.values())


def test_sync_adds_and_removes_only_the_diff_and_never_creates_a_user(
    store: LocalIdentityStore, provider: IdentityCenter, proxy: FaultProxy
) -> None:
    lms = store.add_group("lms")
    ann, bob, eve = (store.add_user(f"{n}@corp.example") for n in ("ann", "bob", "eve"))
    for user in (ann, eve):
        store.add_member(lms, user)
    target = audience("lms", lms)
    expected = ["ANN@corp.example", "bob@corp.example", "carol@corp.example"]
    plan = provider.plan(target, expected, SyncMode())
    assert plan.added == ("bob@corp.example",)
    assert plan.removed == ("eve@corp.example",)
    assert plan.no_account == ("carol@corp.example",)
    assert plan.blocked is None
    reason = no_account_reason(plan)
    assert reason is not None and "no AWS user with this email" in reason and "carol" in reason
    back = provider.apply(plan)
    assert back.emails == {"ann@corp.example", "bob@corp.example"}
    assert sorted(store.member_ids(lms)) == sorted([ann, bob])
    assert proxy.calls["CreateGroupMembership"] == 1
    assert proxy.calls["DeleteGroupMembership"] == 1
    assert proxy.calls["CreateUser"] == 0


def test_a_duplicate_membership_is_one_member_and_removed_whole(
    store: LocalIdentityStore, provider: IdentityCenter
) -> None:
    lms = store.add_group("lms")
    ann, eve = store.add_user("ann@corp.example"), store.add_user("eve@corp.example")
    store.add_member(lms, ann)
    store.add_member(lms, eve)
    store.add_member(lms, eve)
    plan = provider.plan(audience("lms", lms), ["ann@corp.example"], SyncMode())
    assert plan.removed == ("eve@corp.example",)
    assert provider.apply(plan).emails == {"ann@corp.example"}
    assert store.member_ids(lms) == [ann]


def test_guards_apply_and_aws_has_no_rule_limit(
    store: LocalIdentityStore, provider: IdentityCenter
) -> None:
    lms = store.add_group("lms")
    users = [store.add_user(f"u{i}@corp.example") for i in range(20)]
    for user in users:
        store.add_member(lms, user)
    plan = provider.plan(audience("lms", lms), ["u0@corp.example"], SyncMode())
    assert plan.blocked == MASS_REMOVAL
    forced = provider.plan(audience("lms", lms), ["u0@corp.example"], SyncMode(force=True))
    assert forced.blocked is None and len(forced.removed) == 19
    many = [f"x{i}@corp.example" for i in range(1200)]
    assert provider.plan(audience("lms", lms), many, SyncMode(force=True)).blocked is None


def test_a_plan_for_a_deleted_group_is_an_error(
    store: LocalIdentityStore, provider: IdentityCenter
) -> None:
    with pytest.raises(AwsError, match="not found") as caught:
        provider.plan(audience("lms", "no-such-group"), [], SyncMode())
    assert caught.value.not_found


def test_a_read_back_that_differs_fails_verification(
    store: LocalIdentityStore, provider: IdentityCenter, proxy: FaultProxy
) -> None:
    lms = store.add_group("lms")
    store.add_user("ann@corp.example")
    plan = provider.plan(audience("lms", lms), ["ann@corp.example"], SyncMode())
    proxy.swallow("CreateGroupMembership", {"MembershipId": "m-lost", "IdentityStoreId": "d"})
    with pytest.raises(VerificationFailed):
        provider.apply(plan)
    assert store.member_ids(lms) == []


def test_create_group_names_it_after_the_audience_with_the_members_that_have_users(
    store: LocalIdentityStore, provider: IdentityCenter, proxy: FaultProxy
) -> None:
    store.add_user("ann@corp.example")
    group_id, actual = provider.create_group("payroll", ["Ann@corp.example", "zed@corp.example"])
    assert store.group_names()[group_id] == "payroll"
    assert actual.emails == {"ann@corp.example"}
    assert proxy.calls["CreateGroup"] == 1 and proxy.calls["CreateUser"] == 0
    assert provider.applied(group_id, ["ann@corp.example"], [])
    assert not provider.applied(group_id, ["zed@corp.example"], [])
