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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

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


def failure(status: int, code: int, message: str) -> Reply:
    document = {"success": False, "errors": [{"code": code, "message": message}], "messages": []}
    return json_reply(status, {**document, "result": None})


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


def validated_group(body: bytes) -> dict[str, Any] | Reply:
    """The fields of a POST/PUT body, or the 400 Cloudflare would answer."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        return failure(400, 10400, "request body is not valid JSON")
    if not isinstance(document, dict):
        return failure(400, 10400, "request body must be a JSON object")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        return failure(400, 10400, "name is required")
    if not isinstance(document.get("include"), list):
        return failure(400, 10400, "include is required: a list of rules")
    lists = {key: document.get(key) or [] for key in ("include", "exclude", "require")}
    for key, rules in lists.items():
        if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
            return failure(400, 10400, f"{key} must be a list of rule objects")
    total = sum(len(rules) for rules in lists.values())
    if total > MAX_RULES_PER_GROUP:
        return failure(
            400,
            10400,
            f"too many rules: {total} in include, exclude and require together "
            f"(an Access group holds at most {MAX_RULES_PER_GROUP})",
        )
    is_default = document.get("is_default", False)
    if not isinstance(is_default, bool):
        return failure(400, 10400, "is_default must be a boolean")
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
