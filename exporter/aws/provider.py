"""AWS IAM Identity Center as a provider (``exporter/core/provider.py``), in the domain's terms.

A group's actual members are its memberships, each user resolved to its primary email through
one paginated ``ListUsers`` per check cycle (kept for ``users_max_age`` seconds, so the partial
checks and syncs that follow a cycle reuse it). A member user without an email is not a
member email: it is shown among the group's other rules and never touched. A sync adds with
``CreateGroupMembership`` and removes with ``DeleteGroupMembership``, one call per member, on
a fresh read of the memberships, and reads them back. It never creates a user: a Vault member
without one is reported ("no AWS user with this email").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from exporter.aws.identity_store import AwsError, IdentityStoreClient
from exporter.core.model import Actual, Audience, Group, Rule, SyncPlan
from exporter.core.plan import email_rule, plan_in
from exporter.core.provider import (
    AWS_IDENTITY_CENTER,
    CAPABILITIES,
    Listing,
    ProviderStats,
    SyncMode,
    VerificationFailed,
)

log = logging.getLogger("vault_drift.aws")

USER_RULE = "identitystore_user"  # how a member user without an email shows among other rules


@dataclass(frozen=True)
class Directory:
    """The store's users as one cycle saw them: primary email <-> user id."""

    user_of: Mapping[str, str]  # lowercased primary email -> user id
    email_of: Mapping[str, str | None]  # user id -> lowercased primary email (None: none)
    names: Mapping[str, str] = field(default_factory=dict)  # user id -> user name
    read_at: float = 0.0  # monotonic

    @property
    def emails(self) -> frozenset[str]:
        return frozenset(self.user_of)


@dataclass(frozen=True)
class GroupRead:
    """One group as read: its members by email, and its memberships by user id."""

    group: Group
    emails: frozenset[str]
    memberships: Mapping[str, list[str]]  # user id -> membership ids (AWS keeps one each)

    def actual(self, accounts: frozenset[str]) -> Actual:
        return Actual(group=self.group, emails=self.emails, accounts=accounts)


class IdentityCenter:
    """The ``aws_identity_center`` provider over one identity store."""

    name = AWS_IDENTITY_CENTER
    capabilities = CAPABILITIES[AWS_IDENTITY_CENTER]

    def __init__(
        self,
        client: IdentityStoreClient,
        *,
        users_max_age: float = 60.0,
        workers: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._users_max_age = users_max_age
        self._workers = workers
        self._clock = clock
        self._lock = threading.Lock()
        self._directory: Directory | None = None

    def request_stats(self) -> ProviderStats:
        return self.client.stats.snapshot()

    def pause_left(self) -> float | None:
        return self.client.pause_left()

    # -- reads --------------------------------------------------------------------------

    def users(self, *, refresh: bool = False) -> Directory:
        """The store's users: listed again when ``refresh`` or older than ``users_max_age``."""
        with self._lock:
            kept = self._directory
        if kept is not None and not refresh and self._clock() - kept.read_at < self._users_max_age:
            return kept
        read_at = self._clock()
        user_of: dict[str, str] = {}
        email_of: dict[str, str | None] = {}
        names: dict[str, str] = {}
        for user in self.client.list_users():
            email_of[user.user_id] = user.email
            names[user.user_id] = user.user_name
            if user.email is not None:
                kept_id = user_of.setdefault(user.email, user.user_id)
                if kept_id != user.user_id:
                    log.warning(
                        "AWS users %s and %s share the email %s: the first is used",
                        kept_id,
                        user.user_id,
                        user.email,
                    )
        directory = Directory(user_of, email_of, names, read_at)
        with self._lock:
            self._directory = directory
        return directory

    def actual_members(self, audiences: Sequence[Audience]) -> Listing:
        """Users once, the store's groups once, then each group's memberships."""
        wanted = [a for a in audiences if a.group_id is not None]
        if not wanted:
            return Listing({})
        try:
            directory = self.users(refresh=True)
            names = self.client.list_groups()
        except AwsError as exc:
            log.warning("AWS listing failed: %s", exc)
            return Listing({a.audience: Actual(error=str(exc)) for a in wanted}, str(exc))

        def read(audience: Audience) -> Actual:
            group_id = audience.group_id
            assert group_id is not None
            if group_id not in names:
                return Actual()  # the store has no such group
            try:
                return self._read(group_id, names[group_id], directory).actual(directory.emails)
            except AwsError as exc:
                return Actual(error=str(exc))

        with ThreadPoolExecutor(self._workers, thread_name_prefix="aws-groups") as pool:
            found = dict(zip([a.audience for a in wanted], pool.map(read, wanted), strict=True))
        return Listing(found)

    def actual_of(self, audience: Audience) -> Actual:
        assert audience.group_id is not None
        try:
            read = self._fresh_read(audience.group_id)
        except AwsError as exc:
            return Actual(error=str(exc))
        if read is None:
            return Actual()
        return read.actual(self.users().emails)

    def _fresh_read(self, group_id: str) -> GroupRead | None:
        """The group read directly (None when the store has no such group). The identity
        store may answer an unknown group's memberships with an empty list (moto does), so
        the group itself is described first."""
        name = self.client.describe_group(group_id)
        if name is None:
            return None
        return self._read(group_id, name, self.users())

    def _read(self, group_id: str, name: str, directory: Directory) -> GroupRead:
        memberships = self.client.list_memberships(group_id)
        by_user: dict[str, list[str]] = {}
        for m in memberships:
            by_user.setdefault(m.user_id, []).append(m.membership_id)
        emails: set[str] = set()
        others: list[Rule] = []
        for user_id in by_user:
            email = self._email(user_id, directory)
            if email is None:
                others.append({USER_RULE: {"user_id": user_id}})
            else:
                emails.add(email)
        group = Group(group_id, name, others)
        return GroupRead(group, frozenset(emails), by_user)

    def _email(self, user_id: str, directory: Directory) -> str | None:
        if user_id in directory.email_of:
            return directory.email_of[user_id]
        user = self.client.describe_user(user_id)  # created since the users were listed
        return user.email if user is not None else None

    # -- sync ---------------------------------------------------------------------------

    def plan(self, audience: Audience, expected: Collection[str], mode: SyncMode) -> SyncPlan:
        assert audience.group_id is not None
        read = self._fresh_read(audience.group_id)
        if read is None:
            raise AwsError(
                f"AWS group {audience.group_id} not found",
                code="ResourceNotFoundException",
                not_found=True,
            )
        directory = self.users()
        members = Group(
            read.group.id,
            read.group.name,
            [*read.group.include, *(email_rule(e) for e in sorted(read.emails))],
        )
        return plan_in(
            mode, audience.audience, members, expected, rule_limit=None, accounts=directory.emails
        )

    def apply(self, plan: SyncPlan) -> Actual:
        """Only the diff, on a fresh read: a member added meanwhile is not added twice, one
        removed meanwhile is not removed again. Then the memberships are read back."""
        group_id = plan.group.id
        read = self._fresh_read(group_id)
        if read is None:
            raise AwsError(f"AWS group {group_id} not found", not_found=True)
        directory = self.users()
        for email in plan.added:
            if email not in read.emails:
                self.client.create_membership(group_id, directory.user_of[email])
        for email in plan.removed:
            for membership_id in self._memberships_of(read, email, directory):
                self.client.delete_membership(membership_id)
        back = self._fresh_read(group_id)
        if back is None:
            raise VerificationFailed(f"AWS group {group_id} disappeared during the sync")
        want = (read.emails | set(plan.added)) - set(plan.removed)
        if back.emails != want:
            raise VerificationFailed(
                "verification failed: the group read back differs from what was sent"
            )
        return back.actual(directory.emails)

    def _memberships_of(self, read: GroupRead, email: str, directory: Directory) -> list[str]:
        return [
            membership_id
            for user_id, ids in read.memberships.items()
            if directory.email_of.get(user_id) == email
            for membership_id in ids
        ]

    def applied(self, group_id: str, added: Collection[str], removed: Collection[str]) -> bool:
        read = self._fresh_read(group_id)
        if read is None:
            return False
        return set(added) <= read.emails and not (set(removed) & read.emails)

    def create_group(self, name: str, emails: Collection[str]) -> tuple[str, Actual]:
        """``CreateGroup`` (display name = the audience), then its members that have a user;
        the others are left out (and show as missing, with their hint, at the next check)."""
        directory = self.users()
        group_id = self.client.create_group(name)
        for email in sorted(set(emails)):
            user_id = directory.user_of.get(email.lower())
            if user_id is not None:
                self.client.create_membership(group_id, user_id)
        read = self._read(group_id, name, directory)
        return group_id, read.actual(directory.emails)


__all__ = ["Directory", "IdentityCenter"]
