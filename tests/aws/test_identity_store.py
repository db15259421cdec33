"""The identity-store client against moto's server (the AWS side), faults from a proxy."""

from __future__ import annotations

import socket

import boto3
import pytest

from exporter.aws.identity_store import (
    PAGE_SIZE,
    AwsError,
    IdentityStoreClient,
    primary_email,
)
from exporter.aws.local import LOCAL_SECRET_ACCESS_KEY, LocalIdentityStore, local_session
from tests.aws.aws_world import FakeTime, client_for
from tests.aws.faults import FaultProxy


def test_primary_email_is_the_primary_one_else_the_first_lowercased() -> None:
    both = {"Emails": [{"Value": "Old@X.com"}, {"Value": "Ann@X.com", "Primary": True}]}
    assert primary_email(both) == "ann@x.com"
    assert primary_email({"Emails": [{"Value": " First@X.com "}, {"Value": "b@x.com"}]}) == (
        "first@x.com"
    )
    assert primary_email({"Emails": [{"Value": ""}, {"Type": "work"}]}) is None
    assert primary_email({}) is None


def test_users_are_listed_by_pages_of_the_largest_size(
    store: LocalIdentityStore, client: IdentityStoreClient, proxy: FaultProxy
) -> None:
    for i in range(PAGE_SIZE):
        store.add_user(f"User{i:03}@Corp.Example")
    store.add_user(None, user_name="robot")
    users = client.list_users()
    assert len(users) == PAGE_SIZE + 1
    assert {u.email for u in users} >= {"user000@corp.example", "user099@corp.example", None}
    assert proxy.calls["ListUsers"] == 2
    assert client.stats.snapshot().requests == {("ListUsers", "2xx"): 2}


def test_memberships_are_read_by_pages(
    store: LocalIdentityStore, client: IdentityStoreClient, proxy: FaultProxy
) -> None:
    group = store.add_group("lms")
    users = [store.add_user(f"u{i}@corp.example") for i in range(PAGE_SIZE + 1)]
    for user in users:
        store.add_member(group, user)
    members = client.list_memberships(group)
    assert sorted(m.user_id for m in members) == sorted(users)
    assert proxy.calls["ListGroupMemberships"] == 2


def test_writes_create_and_delete_one_membership_each(
    store: LocalIdentityStore, client: IdentityStoreClient
) -> None:
    group = client.create_group("crm")
    assert store.group_names()[group] == "crm"
    ann = store.add_user("ann@corp.example")
    membership = client.create_membership(group, ann)
    assert membership is not None and store.member_ids(group) == [ann]
    client.delete_membership(membership)
    assert store.member_ids(group) == []
    client.delete_membership(membership)  # already gone: not an error


def test_errors_keep_aws_code_and_message_and_never_the_secret(
    store: LocalIdentityStore, client: IdentityStoreClient
) -> None:
    assert client.describe_group("no-such-group") is None
    with pytest.raises(AwsError) as caught:
        client.create_membership(store.add_group("lms"), "no-such-user")
    error = caught.value
    assert error.code == "ResourceNotFoundException" and error.not_found
    assert error.status == 400  # moto answers every error 400 (AWS would say 404)
    assert "Member does not exist" in str(error) and "CreateGroupMembership" in str(error)
    assert LOCAL_SECRET_ACCESS_KEY not in str(error) + repr(error)
    with pytest.raises(AwsError, match="Duplicate GroupDisplayName"):
        client.create_group("lms")


def test_throttling_pauses_aws_calls_with_backoff_then_the_call_goes_through(
    store: LocalIdentityStore, client: IdentityStoreClient, proxy: FaultProxy, fake_time: FakeTime
) -> None:
    store.add_user("ann@corp.example")
    proxy.fail("ListUsers", times=2)
    assert [u.email for u in client.list_users()] == ["ann@corp.example"]
    assert fake_time.slept == [1.0, 2.0]  # 1 s, then doubled
    stats = client.stats.snapshot()
    assert stats.requests == {("ListUsers", "4xx"): 2, ("ListUsers", "2xx"): 1}
    assert stats.throttled_total == 2
    assert client.pause_left() is None


def test_aws_retry_after_seconds_sets_the_pause(
    store: LocalIdentityStore, client: IdentityStoreClient, proxy: FaultProxy, fake_time: FakeTime
) -> None:
    proxy.fail("ListGroups", times=1, status=429, retry_after=3)
    assert client.list_groups() == {}
    assert fake_time.slept == [3.0]


def test_a_long_pause_refuses_calls_without_touching_the_network(
    store: LocalIdentityStore, client: IdentityStoreClient, proxy: FaultProxy, fake_time: FakeTime
) -> None:
    proxy.fail("ListGroups", times=1, retry_after=120)  # past the 5 s wait budget
    with pytest.raises(AwsError) as caught:
        client.list_groups()
    assert caught.value.code == "ThrottlingException"
    assert proxy.calls["ListGroups"] == 1
    with pytest.raises(AwsError, match=r"throttled: AWS calls paused for another 120s"):
        client.describe_group("g")
    assert proxy.calls["DescribeGroup"] == 0
    assert client.pause_left() == pytest.approx(120)
    fake_time.now += 121
    assert client.describe_group("g") is None


def test_a_5xx_is_retried_for_reads_only(
    store: LocalIdentityStore, client: IdentityStoreClient, proxy: FaultProxy
) -> None:
    group = store.add_group("lms")
    ann = store.add_user("ann@corp.example")
    proxy.fail("ListGroupMemberships", times=1, status=500, code="InternalServerException")
    assert client.list_memberships(group) == []
    assert proxy.calls["ListGroupMemberships"] == 2
    proxy.fail("CreateGroupMembership", times=1, status=500, code="InternalServerException")
    with pytest.raises(AwsError) as caught:
        client.create_membership(group, ann)
    assert caught.value.status == 500 and caught.value.code == "InternalServerException"
    assert proxy.calls["CreateGroupMembership"] == 1  # may have run: never sent twice
    assert store.member_ids(group) == []


def test_aws_unreachable_is_an_error_naming_the_endpoint(
    store: LocalIdentityStore, fake_time: FakeTime
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = client_for(store, f"http://127.0.0.1:{port}", fake_time)
    with pytest.raises(AwsError, match=rf"cannot reach AWS at http://127.0.0.1:{port}"):
        down.list_users()
    assert down.stats.snapshot().requests == {("ListUsers", "error"): 1}


def test_no_region_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    session = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b")
    with pytest.raises(AwsError, match="AWS_REGION"):
        IdentityStoreClient(identity_store_id="d-0123456789", boto_session=session)


def test_aws_region_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore reads AWS_DEFAULT_REGION, not AWS_REGION: the client reads it itself."""
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    session = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b")
    client = IdentityStoreClient(identity_store_id="d-0123456789", boto_session=session)
    assert client._where() == "the eu-west-3 endpoint"


def test_no_credentials_names_the_chain(
    store: LocalIdentityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = IdentityStoreClient(
        identity_store_id=store.store_id,
        endpoint_url=store.endpoint_url,
        region="us-east-1",
        boto_session=boto3.session.Session(),
    )
    with pytest.raises(AwsError, match=r"no AWS credentials found .*AWS_ACCESS_KEY_ID"):
        client.list_users()


def test_the_client_never_shows_credentials(store: LocalIdentityStore) -> None:
    client = IdentityStoreClient(
        identity_store_id=store.store_id,
        endpoint_url=store.endpoint_url,
        boto_session=local_session(),
    )
    assert LOCAL_SECRET_ACCESS_KEY not in repr(client)
