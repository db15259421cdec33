"""The wire side of the simulated Cloudflare: envelopes, the request budget, the HTTP server.

``simulator.py`` holds the groups and decides every answer; this module only shapes replies
and moves bytes on loopback.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from exporter.demo.simulator_rules import first_refused

MAX_RULES_PER_GROUP = 1000


class RequestHandler(Protocol):
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Reply: ...


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


def json_reply(status: int, document: Any) -> Reply:
    return Reply(status, encode(document), {"Content-Type": "application/json"})


def encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def success(status: int, result: bytes, result_info: dict[str, int] | None = None) -> Reply:
    """An envelope around an already encoded result: a page is a join of stored groups."""
    info = b',"result_info":' + encode(result_info) if result_info is not None else b""
    body = b'{"success":true,"errors":[],"messages":[],"result":' + result + info + b"}"
    return Reply(status, body, {"Content-Type": "application/json"})


def failure(
    status: int, code: int, message: str, *, more: tuple[dict[str, Any], ...] = (), **detail: Any
) -> Reply:
    """Cloudflare's error envelope; ``detail`` adds fields to the first error (``source``,
    ``error_chain``), ``more`` adds errors after it."""
    errors = [{"code": code, "message": message, **detail}, *more]
    return json_reply(status, {"success": False, "errors": errors, "messages": [], "result": None})


# Cloudflare's documented error answers, with its codes and messages (README, "Simulated
# Cloudflare").
def authentication_error() -> Reply:
    return failure(403, 10000, "Authentication error")


def rate_limited() -> Reply:
    return failure(429, 971, "Please wait and consider throttling your request speed")


def no_route() -> Reply:
    return failure(404, 7000, "No route for that URI")


def unknown_account(api_path: str) -> Reply:
    message = f"Could not route to {api_path}, perhaps your object identifier is invalid?"
    return failure(404, 7003, message, more=({"code": 7000, "message": "No route for that URI"},))


def group_not_found() -> Reply:
    return failure(404, 12135, "access.api.error.not_found")


def invalid_request(pointer: str | None = None) -> Reply:
    """A body Access refuses; ``source.pointer`` (newer answers carry it) names the culprit."""
    message = "access.api.error.invalid_request"
    if pointer is None:
        return failure(400, 12130, message)
    return failure(400, 12130, message, source={"pointer": pointer})


def invalid_parameter(name: str, maximum: int) -> Reply:
    """A query parameter out of range: the shape Cloudflare answers ``per_page=1001`` with on
    an endpoint that caps it (quoted in cloudflare-go pull request 129)."""
    message = f"{name} variable must be a number between 1 and {maximum}"
    chain = [{"code": 11000, "message": message}]
    return failure(400, 6008, "Invalid request parameters", error_chain=chain)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Budget:
    """Cloudflare's per-token budget: a sliding window of admitted requests, then a block."""

    def __init__(self, budget: int, window: float, block: float, clock: Callable[[], float]):
        self._budget, self._window, self._block, self._clock = budget, window, block, clock
        self._admitted: deque[float] = deque()
        self._blocked_until: float | None = None
        self._lock = threading.Lock()

    def admit(self) -> tuple[bool, dict[str, str]]:
        """``(admitted, headers)``: rate-limit headers, or ``retry-after`` when refused."""
        now = self._clock()
        with self._lock:
            while self._admitted and self._admitted[0] <= now - self._window:
                self._admitted.popleft()
            if self._blocked_until is not None and now >= self._blocked_until:
                self._blocked_until = None
            if self._blocked_until is None and len(self._admitted) >= self._budget:
                self._blocked_until = now + self._block
            if self._blocked_until is not None:
                return False, {"retry-after": str(max(1, math.ceil(self._blocked_until - now)))}
            self._admitted.append(now)
            reset = math.ceil(self._admitted[0] + self._window - now)
            remaining = self._budget - len(self._admitted)
        return True, {
            "Ratelimit": f'"default";r={remaining};t={reset}',
            "Ratelimit-Policy": f'"default";q={self._budget};w={self._window:g}',
        }

    def reset(self) -> None:
        with self._lock:
            self._admitted.clear()
            self._blocked_until = None


def json_object(body: bytes) -> dict[str, Any] | Reply:
    """A request body that must be one JSON object, or the 400 Cloudflare answers otherwise."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        return invalid_request()
    if not isinstance(document, dict):
        return invalid_request()
    return document


def validated_group(body: bytes, future_rule_types: Collection[str] = ()) -> dict[str, Any] | Reply:
    """The fields of a POST/PUT body, or the 400 Cloudflare would answer."""
    document = json_object(body)
    if not isinstance(document, dict):
        return document
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        return invalid_request("/name")
    if not isinstance(document.get("include"), list):
        return invalid_request("/include")
    lists = {key: document.get(key) or [] for key in ("include", "exclude", "require")}
    for key, rules in lists.items():
        if not isinstance(rules, list):
            return invalid_request(f"/{key}")
    refused = first_refused(lists, future_rule_types)
    if refused is not None:
        return invalid_request(refused[0])
    total = sum(len(rules) for rules in lists.values())
    if total > MAX_RULES_PER_GROUP:
        return invalid_request()
    is_default = document.get("is_default", False)
    if not isinstance(is_default, bool):
        return invalid_request("/is_default")
    return {"name": name, **lists, "is_default": is_default}


def positive_int(query: dict[str, list[str]], key: str, default: int) -> int | None:
    values = query.get(key)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        return None
    return value if value >= 1 else None


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold stop() up

    def __init__(self, address: tuple[str, int], simulator: RequestHandler) -> None:
        self.simulator = simulator
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request (a killed exporter, a timed-out call) is
        # ordinary here; anything else is still printed.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: LoopbackServer
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; every reply has a length
    timeout = 30  # seconds an idle keep-alive connection is kept
    # Headers and body go out in two writes: with Nagle, a small body waits for the client's
    # delayed ACK, up to 40 ms a request.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the standard library would answer with an HTML page (a method it has no
        ``do_`` for, a malformed request line) goes out in Cloudflare's JSON envelope."""
        reply = failure(code, 7000, "No route for that URI")
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr: the demo and the tests share the terminal."""

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        reply = self.server.simulator.handle(method, self.path, self.headers, body)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout fault): nothing to do
