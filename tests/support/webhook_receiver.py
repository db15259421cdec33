"""A webhook receiver on loopback, as a team would run one: it verifies every delivery with
the ``standardwebhooks`` library (the reference receiver, not vault-drift's code) and keeps
what it got. Its answers are programmable per path: a fixed status, a sequence of statuses,
or a failure ratio (a seeded random source), to play a flaky or gone receiver.

Used by the webhook tests and by ``bench/webhook_soak.py``.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Delivery:
    """One request as the receiver saw it."""

    path: str  # the request target, query included
    webhook_id: str
    verified: bool
    body: dict[str, Any] | None
    status: int  # what the receiver answered
    raw: bytes = b""
    kept: bool = False  # the receiver processed it (a 2xx, or a failure after processing)

    @property
    def type(self) -> str | None:
        return self.body["type"] if self.body else None


@dataclass
class Script:
    """What one path answers: ``statuses`` first (one per request), then ``then``; with
    ``fail_ratio`` a random share of requests answers 500 instead of 2xx, and of those a
    ``fail_after_ratio`` share fails *after* the receiver processed the event (its answer is
    lost: the sender retries what was in fact taken, the source of duplicates)."""

    statuses: list[int] = field(default_factory=list)
    then: int = 204
    fail_ratio: float = 0.0
    fail_after_ratio: float = 0.0


class WebhookReceiver:
    def __init__(self, secret: str, seed: int = 7) -> None:
        self.webhook = Webhook(secret)
        self.scripts: dict[str, Script] = {}
        self.deliveries: list[Delivery] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def taken(self, path: str | None = None) -> list[Delivery]:
        """The deliveries answered 2xx (to ``path`` only, when given), in arrival order."""
        with self._lock:
            return [
                d
                for d in self.deliveries
                if 200 <= d.status < 300 and (path is None or d.path == path)
            ]

    def all(self) -> Iterator[Delivery]:
        with self._lock:
            yield from list(self.deliveries)

    def _answer(self, path: str) -> tuple[int, bool]:
        """The status, and whether the event was processed."""
        with self._lock:
            script = self.scripts.get(path.split("?", 1)[0]) or Script()
            if script.statuses:
                status = script.statuses.pop(0)
                return status, 200 <= status < 300
            if script.fail_ratio and self._random.random() < script.fail_ratio:
                return 500, self._random.random() < script.fail_after_ratio
            return script.then, 200 <= script.then < 300

    def _record(self, path: str, headers: dict[str, str], raw: bytes) -> int:
        try:
            body = self.webhook.verify(raw, headers)
            verified = True
        except WebhookVerificationError:
            body, verified = _json_or_none(raw), False
        status, kept = self._answer(path) if verified else (401, False)
        with self._lock:
            self.deliveries.append(
                Delivery(path, headers.get("webhook-id", ""), verified, body, status, raw, kept)
            )
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._record(self.path, headers, raw)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _json_or_none(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
