"""A local AWS identity store for the demo, the tests and the benchmarks: moto's server mode
on loopback, seeded through boto3 as SCIM would seed the real one.

moto (PyPI ``moto[server]``, the ``aws`` extra) implements the identity store's API and is
written by others, so it catches misreadings of AWS that a fake of our own would share. What
it does differently from AWS (docs/aws.md lists what the tests found): an unknown group's
memberships are an empty list (AWS: ResourceNotFoundException), a membership may be created
twice (AWS: ConflictException), deleting an unknown membership succeeds, and every error is
HTTP 400. One process shares moto's state between servers: each store id is its own world.
"""

from __future__ import annotations

import logging
import secrets
from types import TracebackType
from typing import Any

import boto3

LOCAL_REGION = "us-east-1"
# Credentials moto accepts; never real ones (the demo prints them, as it prints its tokens).
LOCAL_ACCESS_KEY_ID = "AKIAVAULTDRIFTDEMO00"
LOCAL_SECRET_ACCESS_KEY = "vault-drift-local-secret-not-a-real-key"


def moto_available() -> bool:
    """Whether moto's server mode is installed (``pip install -e '.[aws]'``)."""
    try:
        import flask  # noqa: F401  (moto's server needs it)
        from moto.server import ThreadedMotoServer  # noqa: F401
    except ImportError:
        return False
    return True


def new_store_id() -> str:
    """An identity store id as AWS shapes them (``d-`` and 10 hex digits)."""
    return "d-" + secrets.token_hex(5)


def local_session() -> Any:
    """A boto3 session with the local credentials and region (never the caller's chain)."""
    return boto3.session.Session(
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
        region_name=LOCAL_REGION,
    )


class LocalIdentityStore:
    """moto's identity store served on ``127.0.0.1`` (a free port), with one store seeded."""

    def __init__(self, store_id: str | None = None, host: str = "127.0.0.1") -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
        self.store_id = store_id or new_store_id()
        self._server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        self.endpoint_url = ""
        self._admin: Any = None

    def start(self) -> LocalIdentityStore:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._admin = local_session().client("identitystore", endpoint_url=self.endpoint_url)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalIdentityStore:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- seeding, as SCIM and an administrator would ------------------------------------

    def add_user(self, email: str | None, *, user_name: str | None = None, **extra: Any) -> str:
        """A workforce user; ``email`` becomes its primary work email (None: no email).
        ``Emails=[...]`` in ``extra`` replaces that list verbatim."""
        name = user_name or (email or "user-" + secrets.token_hex(4))
        emails = [{"Value": email, "Type": "work", "Primary": True}] if email else []
        params: dict[str, Any] = {
            "UserName": name,
            "DisplayName": name,
            "Name": {"GivenName": name.split("@")[0], "FamilyName": "Example"},
            "Emails": emails,
            **extra,
        }
        if not params["Emails"]:
            del params["Emails"]
        answer = self._admin.create_user(IdentityStoreId=self.store_id, **params)
        return str(answer["UserId"])

    def add_group(self, display_name: str) -> str:
        answer = self._admin.create_group(IdentityStoreId=self.store_id, DisplayName=display_name)
        return str(answer["GroupId"])

    def delete_group(self, group_id: str) -> None:
        self._admin.delete_group(IdentityStoreId=self.store_id, GroupId=group_id)

    def add_member(self, group_id: str, user_id: str) -> str:
        answer = self._admin.create_group_membership(
            IdentityStoreId=self.store_id, GroupId=group_id, MemberId={"UserId": user_id}
        )
        return str(answer["MembershipId"])

    def remove_member(self, group_id: str, user_id: str) -> None:
        for m in self._memberships(group_id):
            if m["MemberId"].get("UserId") == user_id:
                self._admin.delete_group_membership(
                    IdentityStoreId=self.store_id, MembershipId=m["MembershipId"]
                )

    def member_ids(self, group_id: str) -> list[str]:
        """The user ids of a group's memberships, one per membership (duplicates kept)."""
        return [str(m["MemberId"]["UserId"]) for m in self._memberships(group_id)]

    def group_names(self) -> dict[str, str]:
        paginator = self._admin.get_paginator("list_groups")
        return {
            g["GroupId"]: g["DisplayName"]
            for page in paginator.paginate(IdentityStoreId=self.store_id)
            for g in page["Groups"]
        }

    def _memberships(self, group_id: str) -> list[dict[str, Any]]:
        paginator = self._admin.get_paginator("list_group_memberships")
        return [
            m
            for page in paginator.paginate(IdentityStoreId=self.store_id, GroupId=group_id)
            for m in page["GroupMemberships"]
        ]
