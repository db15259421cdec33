"""A simulated Cloudflare Access groups API: a real HTTP server on loopback.

What it models (from Cloudflare's public spec and docs, see the README, "Simulated Cloudflare"):
- the account-scoped endpoints ``GET|POST /client/v4/accounts/{acct}/access/groups`` and
  ``GET|PUT|DELETE .../access/groups/{id}``, in the ``{"success","errors","messages","result",
  "result_info"}`` envelope; a listing carries every group's full rules;
- pagination with ``page``/``per_page``, ``per_page`` silently capped (Cloudflare's maximum is
  undocumented), ``result_info`` with ``page``, ``per_page`` (the capped value), ``count``,
  ``total_count``, ``total_pages``; groups listed in insertion order. With ``per_page_limit``
  a larger ``per_page`` is refused instead, the way endpoints with a documented maximum do
  (400, code 6008 with an ``error_chain`` naming ``per_page``);
- Cloudflare's documented error answers (README, "Simulated Cloudflare"): bearer-token auth
  (403, code 10000 "Authentication error"), an unknown route or a method the path has no
  route for, PATCH included (404, 7000 "No route for that URI"), an unknown account (404,
  7003 then 7000), a group that does not exist (404, 12135 "access.api.error.not_found"), a
  body Access refuses (400, 12130 "access.api.error.invalid_request", with
  ``source.pointer``). Always JSON, even for what the HTTP server itself refuses;
- PUT as a full replace: ``name`` and ``include`` required, ``exclude``/``require`` default to
  ``[]``, at most 1,000 rules per group. Each rule is checked as Cloudflare does
  (``simulator_rules.py``): one key, a rule type Cloudflare has (or one a test declared in
  ``future_rule_types``), an object as value, an address in an ``email`` rule; accepted
  rules are stored and returned verbatim;
  ``is_default`` kept and returned as a boolean (the spec makes it an optional boolean of the
  request; its answer type there is wrong). A PUT without it clears it, as a full replace
  would: whether Cloudflare does is undocumented, and this is the case a client must survive;
- the per-token budget: every admitted API request counts in a sliding window; past the budget
  every request gets 429 with ``retry-after`` for the rest of a block (Cloudflare: 1,200
  requests / 5 minutes, then a 5-minute block). Normal answers carry ``Ratelimit`` and
  ``Ratelimit-Policy`` headers;
- faults drawn per request from a seeded generator (``Faults``): spurious 429, a 502/503 HTML
  page, a hung answer, a 200 with its JSON cut in half, a listing repeating a page or
  over-reporting ``total_count``; a throttled group, hidden from the listing, that answers
  429 to every request.

- Access sessions and ``POST .../access/organizations/revoke_user`` (``simulator_sessions.py``):
  a member of a group "logs in" (``login``: refused unless an ``email`` include rule of some
  group names them and no ``exclude`` rule does), ``revoke_user`` ends that email's sessions
  and is recorded; a token in ``sessions.denied`` gets 403;
- the account audit log (``simulator_audit.py``): every write through the API is an entry with
  the actor of the token that made it (``tokens`` maps more tokens to their actors); a manual
  edit (``set_include``) is a dashboard entry by a named person;

What it does not model: zone-scoped groups, search/name filters, the fields of rules other
than ``email`` (an ``{"group": {"id": ...}}`` may point anywhere), the 300-groups-per-account
limit, other Access objects, API keys (only bearer tokens), gzip, HTTP/2 or TLS. A 5xx fault
is answered before the request is applied. ``add_group`` and the manual edit refuse the rules
the API refuses (``ValueError``), so no test starts from a state Cloudflare could not hold.

Control routes, no token, not counted in the budget: ``POST /_sim/faults`` (JSON object of
``Faults`` fields), ``POST /_sim/groups/{id}/include`` (JSON list, or ``{"include": [...],
"by": "jane@corp.example"}``: a manual dashboard edit, by that person), ``GET /_sim/groups``,
``GET /_sim/audit`` (the audit log's entries, oldest first), ``GET /_sim/stats``,
``GET /_sim/sessions`` (live sessions and revocations), ``POST /_sim/sessions/login``
(``{"email": ...}``: 200 when a group lets them in, 403 otherwise).
"""

from __future__ import annotations

import hmac
import json
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from itertools import islice
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter.core.model import Rule
from exporter.demo.simulator_audit import Actor, AuditLog, denied
from exporter.demo.simulator_rules import first_refused
from exporter.demo.simulator_sessions import Sessions
from exporter.demo.simulator_wire import (
    Budget,
    LoopbackServer,
    Reply,
    authentication_error,
    encode,
    failure,
    group_not_found,
    invalid_parameter,
    json_reply,
    no_route,
    now_iso,
    positive_int,
    rate_limited,
    success,
    unknown_account,
    validated_group,
)

DEFAULT_PER_PAGE = 25
REQUEST_LOG_SIZE = 10_000
_API_PATH = re.compile(r"/client/v4/accounts/([^/]+)/access/groups(?:/([^/]+))?/?")
_AUDIT_PATH = re.compile(r"/client/v4/accounts/([^/]+)/audit_logs/?")
_REVOKE_PATH = re.compile(r"/client/v4/accounts/([^/]+)/access/organizations/revoke_user/?")
# Who the demo token acts as, and who edits groups in the dashboard unless a test names someone.
TOKEN_ACTOR = Actor("automation@demo-account.example", type="user")
DASHBOARD_USER = Actor("admin@demo-account.example")
_SIM_INCLUDE_PATH = re.compile(r"/_sim/groups/([^/]+)/include/?")
_HTML_ERROR = (
    "<!DOCTYPE html><html><head><title>{status} | api.cloudflare.com</title></head>"
    "<body><h1>Error {status}</h1><p>The origin is temporarily unavailable.</p></body></html>"
)


@dataclass
class Faults:
    """Fault probabilities (0..1) drawn once per API request from ``random.Random(seed)``."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0  # an HTML error page with status 502 or 503
    rate_timeout: float = 0.0  # answer only after timeout_seconds
    rate_truncated: float = 0.0  # status 200, JSON cut in half
    repeat_page: bool = False  # listing: page 2 returns page 1's items again
    short_total: bool = False  # listing: total_count reports one more group than exist
    seed: int = 0
    timeout_seconds: float = 35.0
    retry_after_seconds: int = 300  # retry-after of a spurious or throttled 429
    # A group left out of every listing (and of total_count), whose every request (a direct
    # GET, a PUT) answers 429 with retry_after_seconds. Not drawn: always, while set.
    throttled_group: str | None = None


class CloudflareSimulator:
    """Access groups of one account behind a loopback HTTP server; see the module docstring."""

    def __init__(
        self,
        *,
        account_id: str = "demo-account",
        token: str = "demo-token",
        per_page_cap: int = 100,
        per_page_limit: int | None = None,
        future_rule_types: Collection[str] = (),
        request_budget: int = 1200,
        budget_window_seconds: float = 300.0,
        block_seconds: float = 300.0,
        latency_seconds: float = 0.0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        tokens: Mapping[str, Actor] | None = None,
        token_actor: Actor = TOKEN_ACTOR,
        audit_per_page_cap: int = 1000,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.account_id = account_id
        self._token = token
        # Every token the API accepts, with who it acts as in the audit log.
        self.tokens: dict[str, Actor] = {token: token_actor, **(tokens or {})}
        self.audit = AuditLog(
            account_id,
            per_page_cap=audit_per_page_cap,
            **({"clock": wall_clock} if wall_clock is not None else {}),
        )
        self.audit_denied: set[str] = set()  # tokens without the audit log's permission
        self.sessions = Sessions()  # Access sessions and revoke_user
        self.audit_failing = False  # the audit log answers 500 (an outage of that API alone)
        self.per_page_cap = per_page_cap
        self.per_page_limit = per_page_limit
        # Rule types Cloudflare does not have yet, declared by a test of pass-through.
        self.future_rule_types: set[str] = set(future_rule_types)
        self.latency_seconds = latency_seconds
        self._address = (host, port)
        self._budget = Budget(request_budget, budget_window_seconds, block_seconds, clock)
        self._lock = threading.Lock()
        # Groups are stored encoded: a listing is a join, not a re-serialisation of 1M rules
        # (Cloudflare's own encoding cost is not ours to pay in a benchmark), and memory
        # stays at the JSON's size instead of two dicts per rule.
        self._groups: dict[str, bytes] = {}
        self._log: deque[tuple[str, str, int]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._request_count = 0
        self._stopping = threading.Event()
        self._server: LoopbackServer | None = None
        self.faults = faults or Faults()
        self.base_url = ""
        self._d1: Any = None  # a D1Simulator served beside the groups (attach_d1)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CloudflareSimulator:
        self._stopping.clear()
        self._server = LoopbackServer(self._address, self)
        port = self._server.server_address[1]
        self.base_url = f"http://{self._address[0]}:{port}/client/v4"
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hung (timeout fault) and latency sleeps
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> CloudflareSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state, as a test or the demo sees it ----------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._random = random.Random(faults.seed)

    @property
    def request_count(self) -> int:
        return self._request_count

    @property
    def request_log(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return list(self._log)

    def add_group(
        self,
        name: str,
        include: list[Rule],
        exclude: list[Rule] | None = None,
        require: list[Rule] | None = None,
        group_id: str | None = None,
        is_default: bool = False,
    ) -> str:
        group_id = group_id or str(uuid.uuid4())
        now = now_iso()
        group = {"id": group_id, "name": name, "created_at": now, "updated_at": now}
        lists = {"include": include, "exclude": exclude or [], "require": require or []}
        self._check_rules(lists)
        with self._lock:
            if group_id in self._groups:
                raise ValueError(f"group {group_id} already exists")
            self._groups[group_id] = encode({**group, **lists, "is_default": is_default})
        return group_id

    def group(self, group_id: str) -> dict[str, Any]:
        with self._lock:
            encoded = self._groups[group_id]
        result: dict[str, Any] = json.loads(encoded)
        return result

    def groups(self) -> list[dict[str, Any]]:
        with self._lock:
            encoded = list(self._groups.values())
        return [json.loads(group) for group in encoded]

    def set_include(
        self,
        group_id: str,
        include: list[Rule],
        by: Actor | str | None = None,
        interface: str = "UI",
    ) -> None:
        """A manual edit in the dashboard (by ``by``, a person): not an API request, not in
        the budget, but in the audit log like every change."""
        self._check_rules({"include": include})
        with self._lock:
            current = json.loads(self._groups[group_id])
            edited = {**current, "include": include, "updated_at": now_iso()}
            self._groups[group_id] = encode(edited)
        actor = Actor(by) if isinstance(by, str) else by or DASHBOARD_USER
        self.audit.record("update", group_id, current, edited, actor, interface)

    def login(self, email: str) -> bool:
        """A person opens an Access application: a session when a group lets them in."""
        wanted = {"email": {"email": email.lower()}}
        for group in self.groups():
            include = [_lowered(rule) for rule in group.get("include", [])]
            exclude = [_lowered(rule) for rule in group.get("exclude", [])]
            if wanted in include and wanted not in exclude:
                self.sessions.login(email)
                return True
        return False

    def delete_group(self, group_id: str) -> None:
        with self._lock:
            del self._groups[group_id]

    def attach_d1(self, d1: Any) -> None:
        """Serve a ``d1_simulator.D1Simulator`` under the same URL, token and budget."""
        self._d1 = d1

    def reset_budget(self) -> None:
        self._budget.reset()

    def _check_rules(self, lists: dict[str, list[Rule]]) -> None:
        """The dashboard refuses what the API refuses: no state Cloudflare could not hold."""
        refused = first_refused(lists, self.future_rule_types)
        if refused is not None:
            raise ValueError(f"Cloudflare would refuse the rule at {refused[0]}: {refused[1]}")

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Reply:
        """The reply to one HTTP request (called from the server's handler threads)."""
        url = urlsplit(raw_path)
        if url.path.startswith("/_sim/d1/") and self._d1 is not None:
            return self._d1.control(method, url.path, body)
        if url.path.startswith("/_sim/"):
            return self._control(method, url.path, body)
        reply = self._api(method, url.path, parse_qs(url.query), headers, body)
        with self._lock:
            self._request_count += 1
            self._log.append((method, url.path, reply.status))
        return reply

    def _api(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> Reply:
        if self.latency_seconds > 0:
            self._stopping.wait(self.latency_seconds)
        admitted, limit_headers = self._budget.admit()
        if not admitted:
            reply = rate_limited()
            reply.headers.update(limit_headers)
            return reply
        if self._d1 is not None and self._d1.handles(path):
            if not hmac.compare_digest(headers.get("Authorization", ""), f"Bearer {self._token}"):
                return authentication_error()
            reply = self._d1.handle(method, path, body, self.account_id, query)
            reply.headers.update(limit_headers)
            return reply
        faults = self._faults
        if faults.throttled_group is not None and self._names_group(path, faults.throttled_group):
            return _throttled(faults)
        faults, fault = self._draw_fault()
        if fault == "429":
            return _throttled(faults)
        if fault == "5xx":
            status = 502 if self._coin() else 503
            page = _HTML_ERROR.format(status=status).encode()
            return Reply(status, page, {"Content-Type": "text/html; charset=UTF-8"})
        if fault == "timeout":
            self._stopping.wait(faults.timeout_seconds)
        reply = self._route(method, path, query, headers, body)
        reply.headers.update(limit_headers)
        if fault == "truncated" and reply.status == 200:
            reply.body = reply.body[: len(reply.body) // 2]
        return reply

    def _draw_fault(self) -> tuple[Faults, str | None]:
        """One draw per request; the rates are stacked slices of [0, 1)."""
        with self._lock:
            faults, draw = self._faults, self._random.random()
        for fault, rate in (
            ("429", faults.rate_429),
            ("5xx", faults.rate_5xx),
            ("timeout", faults.rate_timeout),
            ("truncated", faults.rate_truncated),
        ):
            if draw < rate:
                return faults, fault
            draw -= rate
        return faults, None

    @staticmethod
    def _names_group(path: str, group_id: str) -> bool:
        match = _API_PATH.fullmatch(path)
        return match is not None and match[2] == group_id

    def _coin(self) -> bool:
        with self._lock:
            return self._random.random() < 0.5

    def _token_of(self, headers: Any) -> str | None:
        given = headers.get("Authorization", "")
        for token in self.tokens:
            if hmac.compare_digest(given, f"Bearer {token}"):
                return token
        return None

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> Reply:
        token = self._token_of(headers)
        if token is None:
            return authentication_error()
        audit = _AUDIT_PATH.fullmatch(path)
        revoke = _REVOKE_PATH.fullmatch(path)
        match = audit or revoke or _API_PATH.fullmatch(path)
        if match is None:
            return no_route()
        if match[1] != self.account_id:
            return unknown_account(path.removeprefix("/client/v4"))
        if revoke is not None:
            return self.sessions.handle(method, query, body, token)
        if audit is not None:
            if method != "GET":
                return no_route()
            if self.audit_failing:
                return failure(500, 10000, "Internal Server Error")
            return denied() if token in self.audit_denied else self.audit.listing(query)
        group_id, actor = match[2], self.tokens[token]
        if group_id is None:
            if method == "GET":
                return self._list(query)
            if method == "POST":
                return self._create(body, actor)
        elif method in ("GET", "PUT", "DELETE"):
            return self._one_group(method, group_id, body, actor)
        return no_route()  # Cloudflare routes by method and path: PATCH has no route here

    def _list(self, query: dict[str, list[str]]) -> Reply:
        page = positive_int(query, "page", 1)
        per_page = positive_int(query, "per_page", DEFAULT_PER_PAGE)
        if page is None:
            return invalid_parameter("page", 2**31 - 1)
        limit = self.per_page_limit
        if per_page is None or (limit is not None and per_page > limit):
            return invalid_parameter("per_page", limit or 2**31 - 1)
        per_page = min(per_page, self.per_page_cap)
        faults = self._faults
        shown_page = 1 if faults.repeat_page and page == 2 else page
        hidden = faults.throttled_group
        with self._lock:
            listed: Collection[bytes] = self._groups.values()
            if hidden is not None and hidden in self._groups:
                listed = [group for key, group in self._groups.items() if key != hidden]
            total = len(listed)
            start = (shown_page - 1) * per_page
            groups = list(islice(listed, start, start + per_page))
        total_count = total + 1 if faults.short_total else total
        result_info = {
            "page": page,
            "per_page": per_page,
            "count": len(groups),
            "total_count": total_count,
            "total_pages": math.ceil(total_count / per_page),
        }
        return success(200, b"[" + b",".join(groups) + b"]", result_info)

    def _create(self, body: bytes, actor: Actor) -> Reply:
        fields_or_error = validated_group(body, self.future_rule_types)
        if isinstance(fields_or_error, Reply):
            return fields_or_error
        group_id = self.add_group(**fields_or_error)
        with self._lock:
            encoded = self._groups[group_id]
        self.audit.record("create", group_id, None, json.loads(encoded), actor, "API")
        return success(201, encoded)

    def _one_group(self, method: str, group_id: str, body: bytes, actor: Actor) -> Reply:
        with self._lock:
            current = self._groups.get(group_id)
        if current is None:
            return group_not_found()
        if method == "GET":
            return success(200, current)
        if method == "DELETE":
            with self._lock:
                self._groups.pop(group_id, None)
            self.audit.record("delete", group_id, json.loads(current), None, actor, "API")
            return success(202, encode({"id": group_id}))
        fields_or_error = validated_group(body, self.future_rule_types)
        if isinstance(fields_or_error, Reply):
            return fields_or_error
        replaced = encode({**json.loads(current), **fields_or_error, "updated_at": now_iso()})
        with self._lock:
            self._groups[group_id] = replaced
        old, new = json.loads(current), json.loads(replaced)
        self.audit.record("update", group_id, old, new, actor, "API")
        return success(200, replaced)

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        """Test and demo hooks for other processes; plain JSON, no envelope, no token."""
        include_match = _SIM_INCLUDE_PATH.fullmatch(path)
        try:
            if method == "POST" and path.rstrip("/") == "/_sim/faults":
                self.faults = Faults(**json.loads(body or b"{}"))
                return json_reply(200, asdict(self.faults))
            if method == "POST" and include_match is not None:
                edit = json.loads(body or b"null")
                by = edit.get("by") if isinstance(edit, dict) else None
                include = edit.get("include") if isinstance(edit, dict) else edit
                if not isinstance(include, list) or not all(isinstance(r, dict) for r in include):
                    raise ValueError("include must be a JSON list of rule objects")
                if by is not None and not isinstance(by, str):
                    raise ValueError("by names a person: an email")
                self.set_include(include_match[1], include, by)
                return json_reply(200, self.group(include_match[1]))
        except KeyError:
            return json_reply(404, {"error": "no such group"})
        except (TypeError, ValueError) as exc:
            known = ", ".join(field.name for field in fields(Faults))
            return json_reply(400, {"error": f"bad control request: {exc}", "faults": known})
        if method == "GET" and path.rstrip("/") == "/_sim/groups":
            with self._lock:
                encoded = list(self._groups.values())
            body = b"[" + b",".join(encoded) + b"]"
            return Reply(200, body, {"Content-Type": "application/json"})
        if method == "GET" and path.rstrip("/") == "/_sim/audit":
            return json_reply(200, self.audit.entries())
        if method == "GET" and path.rstrip("/") == "/_sim/sessions":
            return json_reply(200, self.sessions.document())
        if method == "POST" and path.rstrip("/") == "/_sim/sessions/login":
            try:
                email = json.loads(body or b"{}").get("email", "")
            except (ValueError, AttributeError):
                return json_reply(400, {"error": 'bad control request: {"email": ...}'})
            return json_reply(200 if self.login(str(email)) else 403, {"email": email})
        if method == "GET" and path.rstrip("/") == "/_sim/stats":
            return json_reply(200, {"request_count": self.request_count})
        return json_reply(404, {"error": f"no control route {method} {path}"})


def _lowered(rule: Rule) -> Rule:
    """An email rule with its address lowercased (Access matches identities that way)."""
    address = rule.get("email", {}).get("email") if isinstance(rule.get("email"), dict) else None
    return {"email": {"email": address.lower()}} if isinstance(address, str) else rule


def _throttled(faults: Faults) -> Reply:
    reply = rate_limited()
    reply.headers["retry-after"] = str(faults.retry_after_seconds)
    return reply
