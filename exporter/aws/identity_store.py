"""The AWS identity store of IAM Identity Center, over boto3's ``identitystore`` client.

The only module that calls AWS. Every failure becomes an ``AwsError`` that keeps AWS's error
code, its message and the HTTP status, never a credential. Throttling (``ThrottlingException``,
429, 5xx) pauses every AWS call of this client (``throttle.py``); a throttled call was refused,
not run, so it is sent again once the pause ends within the wait budget. botocore's own
retries are off: each API call here is exactly one HTTP request, counted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from exporter.aws.throttle import AwsStats, ThrottleGate
from exporter.core.provider import AWS_IDENTITY_CENTER, ProviderError

log = logging.getLogger("vault_drift.aws")

PAGE_SIZE = 100  # the largest MaxResults the identity store accepts
MAX_PAGES = 10_000
MAX_ATTEMPTS = 4  # a throttled call is sent again, up to this many times in all
THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling"})
NOT_FOUND = "ResourceNotFoundException"
CONFLICT = "ConflictException"
READS = frozenset({"ListUsers", "ListGroups", "ListGroupMemberships", "DescribeGroup"})
CREDENTIALS_HINT = (
    "no AWS credentials found (the standard chain: AWS_ACCESS_KEY_ID and"
    " AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity or an instance role)"
)


class AwsError(ProviderError):
    """An identity-store call that failed; ``code`` is AWS's error code when it gave one."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, provider=AWS_IDENTITY_CENTER, **kwargs)

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.status:
            parts.append(f"(HTTP {self.status})")
        if self.request:
            parts.append(f"on {self.request}")
        return " ".join(parts)


@dataclass(frozen=True)
class StoreUser:
    user_id: str
    email: str | None  # the primary email, lowercased; None when the user has none
    user_name: str = ""


@dataclass(frozen=True)
class Membership:
    membership_id: str
    user_id: str


def primary_email(user: Mapping[str, Any]) -> str | None:
    """A user's email as the identity store marks it: the one with ``Primary``, else the
    first; lowercased (emails are compared case-insensitively)."""
    emails = [
        e
        for e in user.get("Emails") or ()
        if isinstance(e, Mapping) and isinstance(e.get("Value"), str) and e["Value"].strip()
    ]
    if not emails:
        return None
    chosen = next((e for e in emails if e.get("Primary") is True), emails[0])
    return str(chosen["Value"]).strip().lower()


class IdentityStoreClient:
    """One identity store. Thread-safe (boto3 clients are); share one per process."""

    def __init__(
        self,
        *,
        identity_store_id: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        timeout: float = 30.0,
        boto_session: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_pause_seconds: float = 300.0,
    ) -> None:
        self.identity_store_id = identity_store_id
        self.endpoint_url = endpoint_url
        self._timeout = timeout
        self._clock = clock
        self.stats = AwsStats()
        self._gate = ThrottleGate(
            self.stats, clock=clock, sleep=sleep, max_pause_seconds=max_pause_seconds
        )
        session = boto_session if boto_session is not None else boto3.session.Session()
        # botocore reads AWS_DEFAULT_REGION and a profile's region, not AWS_REGION (which the
        # SDKs of other languages and AWS's own containers set): it is read here.
        region = region or session.region_name or os.environ.get("AWS_REGION") or None
        config = BotoConfig(
            region_name=region,
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1},  # our gate owns retries: one call, one request
        )
        try:
            self._client = session.client("identitystore", endpoint_url=endpoint_url, config=config)
        except NoRegionError:
            raise AwsError(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)"
            ) from None

    def __repr__(self) -> str:
        return f"IdentityStoreClient(identity_store_id={self.identity_store_id!r})"

    def pause_left(self) -> float | None:
        """Seconds until AWS calls go out again after throttling; None when they go out now."""
        retry_at = self._gate.paused_until()
        return None if retry_at is None else max(retry_at - self._clock(), 0.0)

    # -- reads --------------------------------------------------------------------------

    def list_users(self) -> list[StoreUser]:
        """Every user of the store with its primary email (paginated; all or an error)."""
        return [
            StoreUser(str(u["UserId"]), primary_email(u), str(u.get("UserName") or ""))
            for u in self._pages("ListUsers", "Users")
        ]

    def list_groups(self) -> dict[str, str]:
        """Every group of the store: id -> display name (paginated; all or an error)."""
        return {
            str(g["GroupId"]): str(g.get("DisplayName") or "")
            for g in self._pages("ListGroups", "Groups")
        }

    def describe_group(self, group_id: str) -> str | None:
        """The group's display name; None when the store has no such group."""
        try:
            answer = self._call("DescribeGroup", GroupId=group_id)
        except AwsError as exc:
            if exc.not_found:
                return None
            raise
        return str(answer.get("DisplayName") or "")

    def describe_user(self, user_id: str) -> StoreUser | None:
        try:
            answer = self._call("DescribeUser", UserId=user_id)
        except AwsError as exc:
            if exc.not_found:
                return None
            raise
        return StoreUser(user_id, primary_email(answer), str(answer.get("UserName") or ""))

    def list_memberships(self, group_id: str) -> list[Membership]:
        """The group's memberships (paginated). Only users can be members of a group."""
        return [
            Membership(str(m["MembershipId"]), str(user_id))
            for m in self._pages("ListGroupMemberships", "GroupMemberships", GroupId=group_id)
            if (user_id := (m.get("MemberId") or {}).get("UserId"))
        ]

    # -- writes -------------------------------------------------------------------------

    def create_membership(self, group_id: str, user_id: str) -> str | None:
        """Add a user to a group: the new membership id, None when it already was a member."""
        try:
            answer = self._call(
                "CreateGroupMembership", GroupId=group_id, MemberId={"UserId": user_id}
            )
        except AwsError as exc:
            if exc.code == CONFLICT:
                return None
            raise
        return str(answer["MembershipId"])

    def delete_membership(self, membership_id: str) -> None:
        """Remove one membership; one that is already gone is not an error."""
        try:
            self._call("DeleteGroupMembership", MembershipId=membership_id)
        except AwsError as exc:
            if not exc.not_found:
                raise

    def create_group(self, display_name: str, description: str | None = None) -> str:
        params: dict[str, Any] = {"DisplayName": display_name}
        if description:
            params["Description"] = description
        return str(self._call("CreateGroup", **params)["GroupId"])

    # -- the wire -----------------------------------------------------------------------

    def _pages(self, operation: str, key: str, **params: Any) -> Iterator[Mapping[str, Any]]:
        seen: set[str] = set()
        token: str | None = None
        for _ in range(MAX_PAGES):
            page_params = {**params, "MaxResults": PAGE_SIZE}
            if token:
                page_params["NextToken"] = token
            answer = self._call(operation, **page_params)
            yield from answer.get(key) or ()
            token = answer.get("NextToken") or None
            if token is None:
                return
            if token in seen:
                raise AwsError(f"{operation} repeated a NextToken: the listing is incomplete")
            seen.add(token)
        raise AwsError(f"{operation}: more than {MAX_PAGES} pages")

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self._client, _snake(operation))
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._take_turn(operation)
            started = self._clock()
            try:
                answer: dict[str, Any] = method(IdentityStoreId=self.identity_store_id, **params)
            except ClientError as exc:
                error = self._client_error(operation, exc)
                if _retryable(operation, error) and attempt < MAX_ATTEMPTS:
                    continue
                raise error from None
            except (NoCredentialsError, PartialCredentialsError):
                raise AwsError(CREDENTIALS_HINT, request=operation) from None
            except BotoConnectionError as exc:
                self.stats.count_request(operation, None)
                reason = f"cannot reach AWS at {self._where()} ({type(exc).__name__})"
                raise AwsError(reason, request=operation) from None
            except BotoCoreError as exc:
                self.stats.count_request(operation, None)
                raise AwsError(f"{type(exc).__name__}", request=operation) from None
            self.stats.count_request(operation, _status(answer))
            self._gate.on_success(started)
            return answer
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _take_turn(self, operation: str) -> None:
        retry_at = self._gate.wait_turn(self._timeout)
        if retry_at is not None:
            left = self._gate.seconds_left(retry_at)
            raise AwsError(
                f"throttled: AWS calls paused for another {left}s",
                code="ThrottlingException",
                request=operation,
            )

    def _client_error(self, operation: str, exc: ClientError) -> AwsError:
        response: Mapping[str, Any] = exc.response
        error = response.get("Error") or {}
        status = _status(response)
        code = str(error.get("Code") or "") or None
        self.stats.count_request(operation, status)
        message = str(error.get("Message") or "") or "request failed"
        throttled = code in THROTTLE_CODES or status == 429
        if throttled or (status is not None and status >= 500):
            pause = self._gate.on_throttle(_retry_after(response))
            log.warning(
                "AWS %s on %s: AWS calls paused for %.0fs", code or status, operation, pause
            )
        return AwsError(
            message,
            status=status,
            code=code,
            request=operation,
            not_found=code == NOT_FOUND,
        )

    def _where(self) -> str:
        return self.endpoint_url or f"the {self._client.meta.region_name} endpoint"


def _retryable(operation: str, error: AwsError) -> bool:
    """A throttled call was refused, not run: any call goes again. A 5xx may have run:
    only reads go again."""
    if error.code in THROTTLE_CODES or error.status == 429:
        return True
    return error.status is not None and error.status >= 500 and operation in READS


def _status(response: Mapping[str, Any]) -> int | None:
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def _retry_after(response: Mapping[str, Any]) -> float | None:
    """AWS's RetryAfterSeconds (in the error, or the Retry-After header), when it gives one."""
    error = response.get("Error") or {}
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    values: tuple[Any, ...] = (
        error.get("RetryAfterSeconds"),
        response.get("RetryAfterSeconds"),
        headers.get("retry-after"),
    )
    for value in values:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if seconds == seconds and seconds > 0:
            return seconds
    return None


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


__all__ = ["AwsError", "IdentityStoreClient", "Membership", "StoreUser", "primary_email"]
