"""Cloudflare Access groups API client: the only module that speaks HTTP to Cloudflare.

Every failure becomes a ``CloudflareError`` that keeps the HTTP status and Cloudflare's first
error code and message, never the token. A 429 pauses the whole client (see
``cloudflare_ratelimit``): a call that meets the pause waits it out when it ends within the
client's timeout, and is refused at once (saying when calls resume) when it ends later.
Transient failures of idempotent calls are retried by urllib3.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError

from exporter.cloudflare.audit import AuditLogReader
from exporter.cloudflare.ratelimit import ClientStats, RateLimitGate, retry_policy, scrub
from exporter.cloudflare.stream import CHUNK_BYTES, EnvelopeStream, NotAnObject, NotJson
from exporter.cloudflare.wire import (
    NOT_JSON,
    CloudflareError,
    IncompleteListing,
    PageInfo,
    RateLimited,
    decode,
    first_error,
    group_from_json,
)
from exporter.core.model import Group, Rule

__all__ = [
    "ClientStats",
    "CloudflareClient",
    "CloudflareError",
    "IncompleteListing",
    "RateLimited",
]

log = logging.getLogger("vault_drift.cloudflare")

GROUPS_PATH = "/access/groups"
REVOKE_PATH = "/access/organizations/revoke_user"
# A server that keeps answering full pages of new ids would otherwise be followed forever.
MAX_PAGES = 10_000
# Cloudflare documents no maximum per_page for Access groups; its other listings cap it at 50.
# A 400 naming per_page makes the listing ask for these instead, and keep the one accepted.
FALLBACK_PAGE_SIZES = (50, 25)
PAGE_SIZE_SETTING = "VAULT_DRIFT_CLOUDFLARE_PAGE_SIZE"  # named in errors an operator can fix
_NAMES_PER_PAGE = re.compile(r"per[_ -]?page", re.IGNORECASE)


class CloudflareClient:
    """Access groups of one account. Thread-safe: share one client between threads."""

    def __init__(
        self,
        *,
        base_url: str,
        account_id: str,
        token: str,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        per_page: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_pause_seconds: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._account_url = f"{self._base_url}/accounts/{quote(account_id, safe='')}"
        self._token = token
        self._session = session if session is not None else requests.Session()
        adapter = HTTPAdapter(max_retries=retry_policy())
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._timeout = timeout
        self._per_page = per_page
        self._clock = clock
        self._wall_clock = wall_clock
        self.stats = ClientStats()
        self._gate = RateLimitGate(
            self.stats,
            clock=clock,
            wall_clock=wall_clock,
            max_pause_seconds=max_pause_seconds,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"CloudflareClient(base_url={self._base_url!r}, token=<redacted>)"

    @property
    def rate_gate(self) -> RateLimitGate:
        """The one 429 gate of this token's budget; the D1 client shares it (``d1.py``)."""
        return self._gate

    def audit_log(self, **options: Any) -> AuditLogReader:
        """The account audit log, read with this client's session, token, gate and budget."""
        return AuditLogReader(
            account_url=self._account_url,
            token=self._token,
            session=self._session,
            gate=self._gate,
            stats=self.stats,
            timeout=self._timeout,
            clock=self._clock,
            **options,
        )

    def pause_left(self) -> float | None:
        """Seconds until calls go out again after a 429; None when they go out now."""
        retry_at = self._gate.paused_until()
        return None if retry_at is None else max(retry_at - self._clock(), 0.0)

    def list_groups(self) -> list[Group]:
        """Every group with its full rules, by pagination; raises rather than return a part."""
        return list(self.iter_groups())

    def iter_groups(self) -> Iterator[Group]:
        """``list_groups`` one group at a time, each handed out as soon as it is parsed.

        The listing is only complete once the iterator is exhausted without raising: on any
        error, everything already yielded must be discarded.
        """
        seen: dict[str, int] = {}  # group id -> the page it was listed on
        total_count: int | None = None
        for page in range(1, MAX_PAGES + 1):
            response, request = self._open_page(page)
            info, count = yield from self._page_groups(response, request, page, seen)
            total_count = info.total_count if info.total_count is not None else total_count
            if self._is_last_page(count, page, info):
                break
        else:
            raise IncompleteListing(f"more than {MAX_PAGES} pages", request=request)
        if total_count is not None and len(seen) < total_count:
            raise IncompleteListing(
                f"listing ended with {len(seen)} groups, result_info.total_count is {total_count}",
                request=request,
            )

    def get_group(self, group_id: str) -> Group:
        path = f"{GROUPS_PATH}/{quote(group_id, safe='')}"
        return self._group_result("GET", path)

    def create_group(
        self,
        name: str,
        include: list[Rule],
        exclude: list[Rule] | None = None,
        require: list[Rule] | None = None,
    ) -> Group:
        body = {
            "name": name,
            "include": include,
            "exclude": exclude or [],
            "require": require or [],
        }
        return self._group_result("POST", GROUPS_PATH, body=body)

    def replace_group(self, group: Group) -> Group:
        """PUT replaces the whole group: every list, and ``is_default`` when it was read as a
        boolean (left out, a default group may lose its flag; anything else is not sent)."""
        body: dict[str, Any] = {
            "name": group.name,
            "include": group.include,
            "exclude": group.exclude,
            "require": group.require,
        }
        if group.is_default is not None:
            body["is_default"] = group.is_default
        return self._group_result("PUT", f"{GROUPS_PATH}/{quote(group.id, safe='')}", body=body)

    def revoke_user(self, email: str) -> None:
        """End ``email``'s Access sessions in every application of the account
        (``POST .../access/organizations/revoke_user``, operation
        ``zero-trust-organization-revoke-all-access-tokens-for-a-user``: body ``{"email"}``,
        answer ``{"success": true, "result": true}``; docs/sessions.md). Idempotent: sending it
        twice is harmless. Raises ``CloudflareError`` unless Cloudflare answers success."""
        status, envelope = self._call("POST", REVOKE_PATH, body={"email": email})
        if envelope.get("result") is False:
            raise CloudflareError(
                "Cloudflare answered result false", status=status, request=f"POST {REVOKE_PATH}"
            )

    def _open_page(self, page: int) -> tuple[requests.Response, str]:
        """The answer to one page, its body still unread; a smaller ``per_page`` when
        Cloudflare refuses the one asked for."""
        params = {"page": page, "per_page": self._per_page}
        try:
            response, request = self._respond("GET", GROUPS_PATH, params=params)
            if response.status_code >= 300:
                self._envelope(response, request)  # raises, with Cloudflare's code and message
        except CloudflareError as exc:
            smaller = self._smaller_page_size(exc, page)
            if smaller is None:
                raise
            log.warning(
                "Cloudflare refused per_page=%d (%s): listing groups %d a page for the rest of"
                " the process (%s=%d skips the refused request)",
                self._per_page,
                exc.message,
                smaller,
                PAGE_SIZE_SETTING,
                smaller,
            )
            self._per_page = smaller  # kept for the rest of the process
            return self._open_page(page)
        return response, request

    def _smaller_page_size(self, exc: CloudflareError, page: int) -> int | None:
        # Only before any group was handed out: a new size would shift the pages under it.
        if page != 1 or exc.status != 400 or not _NAMES_PER_PAGE.search(exc.message):
            return None
        return next((size for size in FALLBACK_PAGE_SIZES if size < self._per_page), None)

    def _page_groups(
        self, response: requests.Response, request: str, page: int, seen: dict[str, int]
    ) -> Generator[Group, None, tuple[PageInfo, int]]:
        """Hand out each group of a page as soon as its end is parsed, and hold nothing else:
        whatever the page size, one group and a read buffer are alive at a time. The
        envelope is judged once the page is complete (``result_info`` may come last)."""
        status = response.status_code
        page_stream = EnvelopeStream(self._body_chunks(response, request))
        try:
            for item in page_stream:
                group = group_from_json(item)
                del item
                if group is None:
                    raise CloudflareError(
                        "malformed group in listing", status=status, request=request
                    )
                if group.id in seen:
                    raise self._repeated(group.id, page, seen[group.id], request)
                seen[group.id] = page
                yield group
                del group
        except NotJson:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            reason = f"invalid JSON in response ({kind})"
            raise CloudflareError(reason, status=status, request=request) from None
        except NotAnObject:
            raise CloudflareError(
                "response is not a Cloudflare envelope", status=status, request=request
            ) from None
        finally:
            response.close()
        self._check_listing_envelope(page_stream, status, request)
        info = PageInfo.parse(page_stream.fields.get("result_info"), page, request)
        return info, page_stream.item_count

    def _body_chunks(self, response: requests.Response, request: str) -> Iterator[bytes]:
        try:
            yield from response.iter_content(CHUNK_BYTES)
        except requests.RequestException as exc:
            if exc.args and isinstance(exc.args[0], ReadTimeoutError):
                reason = f"timeout after {self._timeout:g}s while reading the answer"
            else:
                reason = f"connection error while reading the answer ({type(exc).__name__})"
            raise CloudflareError(reason, status=response.status_code, request=request) from exc

    def _check_listing_envelope(self, page: EnvelopeStream, status: int, request: str) -> None:
        success = page.fields.get("success")
        if not isinstance(success, bool):
            raise CloudflareError(
                "response is not a Cloudflare envelope", status=status, request=request
            )
        if not success:
            code, message = first_error(page.fields)
            reason = scrub(message, self._token) or "request failed"
            raise CloudflareError(reason, status=status, code=code, request=request)
        if not page.has_list:
            raise CloudflareError("listing result is not a list", status=status, request=request)

    def _repeated(self, group_id: str, page: int, listed_on: int, request: str) -> Exception:
        if listed_on == page:
            return IncompleteListing(f"page repeats group id {group_id}", request=request)
        return IncompleteListing(
            f"page {page} repeats group {group_id} of page {listed_on}: Cloudflare seems to"
            " ignore `page`, so the groups past the first page cannot be listed; set"
            f" {PAGE_SIZE_SETTING} (now {self._per_page}) to at least the number of groups"
            " so that one page holds them all",
            request=request,
        )

    def _is_last_page(self, count: int, page: int, info: PageInfo) -> bool:
        # The server may cap per_page below what was asked: its own figure decides shortness.
        page_size = info.per_page if info.per_page is not None else self._per_page
        if count == 0 or count < page_size:
            return True
        return info.total_pages is not None and page >= info.total_pages

    def _group_result(self, method: str, path: str, body: dict[str, Any] | None = None) -> Group:
        status, envelope = self._call(method, path, body=body)
        group = group_from_json(envelope.get("result"))
        if group is None:
            raise CloudflareError(
                "malformed group in response", status=status, request=f"{method} {path}"
            )
        return group

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One API call: ``(status, envelope)`` of a successful answer, else raises."""
        response, request = self._respond(method, path, params=params, body=body)
        return response.status_code, self._envelope(response, request)

    def _respond(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[requests.Response, str]:
        """One API call: the answer unless it is a 429 (raises), its body not yet read."""
        request = f"{method} {path}" + (f"?{urlencode(params)}" if params else "")
        self._gate.take_turn(self._timeout, request)
        started = self._clock()
        response = self._send(method, path, params, body, request)
        log.debug(
            "%s -> %d in %.1f ms", request, response.status_code, (self._clock() - started) * 1e3
        )
        if response.status_code == 429:
            raise self._gate.rate_limited(response, request, self._token)
        # Any other answer means Cloudflare is serving this token again.
        self._gate.on_success(started)
        self.stats.record_ratelimit_header(response.headers.get("Ratelimit"))
        return response, request

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: dict[str, Any] | None,
        request: str,
    ) -> requests.Response:
        try:
            response = self._session.request(
                method,
                f"{self._account_url}{path}",
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=(self._timeout, self._timeout),
                stream=True,  # a listing page is parsed as it arrives; others read it whole
            )
        except requests.Timeout as exc:
            raise self._transport_error(
                method, request, f"timeout after {self._timeout:g}s"
            ) from exc
        except requests.RequestException as exc:
            reason = f"connection error ({type(exc).__name__})"
            raise self._transport_error(method, request, reason) from exc
        self._count_attempts(method, response)
        return response

    def _transport_error(self, method: str, request: str, reason: str) -> CloudflareError:
        self.stats.count_request(method, None)
        log.debug("%s -> %s", request, reason)
        return CloudflareError(reason, request=request)

    def _count_attempts(self, method: str, response: requests.Response) -> None:
        # urllib3 keeps the attempts it retried in the final response's Retry history.
        retries = getattr(response.raw, "retries", None)
        for attempt in getattr(retries, "history", ()):
            self.stats.count_request(method, attempt.status)
        self.stats.count_request(method, response.status_code)

    def _envelope(self, response: requests.Response, request: str) -> dict[str, Any]:
        status = response.status_code
        document = decode(response)
        if document is NOT_JSON:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            reason = f"invalid JSON in response ({kind})"
            raise CloudflareError(reason, status=status, request=request)
        if not isinstance(document, dict) or not isinstance(document.get("success"), bool):
            raise CloudflareError(
                "response is not a Cloudflare envelope", status=status, request=request
            )
        if status >= 300 or not document["success"]:
            code, message = first_error(document)
            reason = scrub(message, self._token) or response.reason or "request failed"
            raise CloudflareError(reason, status=status, code=code, request=request)
        return document
