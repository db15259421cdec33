"""What Cloudflare's answers mean: the envelope, its errors, pages and groups. No I/O.

The errors keep the HTTP status and Cloudflare's first error code and message, never the
token; ``cloudflare.py`` (the client) raises them.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import requests

from exporter.core.model import Group, Rule
from exporter.core.provider import CLOUDFLARE_ACCESS, ProviderError


class CloudflareError(ProviderError):
    """A failed Cloudflare call: ``status`` (None when no HTTP answer), ``code``, ``message``.

    ``request`` is "GET /access/groups?page=2": method and path, no account id.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        request: str | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=CLOUDFLARE_ACCESS,
            status=status,
            code=code,
            request=request,
            not_found=status == 404,
        )

    def __str__(self) -> str:
        where = f" on {self.request}" if self.request else ""
        if self.status is None:
            return f"Cloudflare API {self.message}{where}"
        code = f" (code {self.code})" if self.code is not None else ""
        return f"Cloudflare API {self.status}{code}: {self.message}{where}"


class RateLimited(CloudflareError):
    """A 429, or a call refused locally because an earlier 429 paused the client."""

    def __init__(
        self,
        message: str,
        *,
        retry_at: float,
        retry_after_seconds: float,
        status: int | None = None,
        code: int | None = None,
        request: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request=request)
        self.retry_at = retry_at  # monotonic seconds
        self.retry_after_seconds = retry_after_seconds


class IncompleteListing(CloudflareError):
    """The paginated listing cannot be trusted to hold every group."""


@dataclass(frozen=True)
class PageInfo:
    per_page: int | None
    total_count: int | None
    total_pages: int | None

    @classmethod
    def parse(cls, raw: Any, page: int, request: str) -> PageInfo:
        if raw is None:
            return cls(None, None, None)
        if not isinstance(raw, dict):
            raise IncompleteListing("malformed result_info", request=request)
        fields = {name: _count_field(raw, name, request) for name in _PAGE_FIELDS}
        if fields["page"] is not None and fields["page"] != page:
            raise IncompleteListing(
                f"asked for page {page}, result_info says page {fields['page']}", request=request
            )
        if fields["per_page"] == 0:
            raise IncompleteListing("malformed result_info: per_page is 0", request=request)
        return cls(fields["per_page"], fields["total_count"], fields["total_pages"])


_PAGE_FIELDS = ("page", "per_page", "count", "total_count", "total_pages")


def _count_field(raw: dict[str, Any], name: str, request: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise IncompleteListing(f"malformed result_info.{name}: {value!r}", request=request)
    return value


def _rules(item: dict[str, Any], key: str) -> list[Rule] | None:
    rules = item.get(key)
    if rules is None and key != "include":
        return []
    if isinstance(rules, list) and all(map(isinstance, rules, repeat(dict))):
        return rules
    return None


def group_from_json(item: Any) -> Group | None:
    """A ``Group`` with its rules kept verbatim, or None when ``item`` is not a group."""
    if not isinstance(item, dict):
        return None
    group_id, name = item.get("id"), item.get("name")
    include, exclude, require = (_rules(item, key) for key in ("include", "exclude", "require"))
    if not (isinstance(group_id, str) and group_id and isinstance(name, str)):
        return None
    if include is None or exclude is None or require is None:
        return None
    is_default = item.get("is_default")
    return Group(
        id=group_id,
        name=name,
        include=include,
        exclude=exclude,
        require=require,
        # The spec types it as a rule list in answers: only a real boolean is kept.
        is_default=is_default if isinstance(is_default, bool) else None,
    )


def first_error(document: Any) -> tuple[int | None, str | None]:
    """The first error's code and message; the messages of its ``error_chain`` (where
    Cloudflare says which parameter was wrong) follow the message after a colon."""
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    code, message = errors[0].get("code"), errors[0].get("message")
    chain = errors[0].get("error_chain")
    causes = [
        cause["message"]
        for cause in (chain if isinstance(chain, list) else [])
        if isinstance(cause, dict) and isinstance(cause.get("message"), str)
    ]
    if isinstance(message, str) and causes:
        message = f"{message}: {'; '.join(causes)}"
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else None,
    )


def decode(response: requests.Response) -> Any:
    # A listing page is ~100k small dicts: the cyclic GC would rescan the growing heap many
    # times over while they are built, more than doubling the parse. JSON builds no cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(response.content)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return NOT_JSON
    finally:
        if gc_was_enabled:
            gc.enable()


NOT_JSON = object()
