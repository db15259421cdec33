"""A loopback proxy in front of moto that answers scripted AWS faults.

moto has no throttling for the identity store, so this proxy plays AWS's: for an operation
(``X-Amz-Target: AWSIdentityStore.<Operation>``) it answers the next N calls with a JSON-1.1
error as AWS shapes it (``{"__type": ..., "Message": ...}``, optional ``RetryAfterSeconds``
and ``Retry-After``), and forwards everything else to moto unchanged (``swallow`` answers success and keeps
nothing). It counts the calls it
saw per operation, so a test can tell that a refused call never left the client.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Fault:
    status: int
    code: str
    times: int
    retry_after: float | None = None


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.calls: Counter[str] = Counter()
        self._faults: dict[str, Fault] = {}
        self.swallowed: dict[str, dict[str, object]] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                fault = proxy._take(operation)
                if operation in proxy.swallowed:
                    self._answer_ok(proxy.swallowed[operation])
                    return
                if fault is not None:
                    self._answer_fault(fault)
                    return
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                connection.request("POST", self.path, body, headers)
                answer = connection.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                connection.close()

            def _answer_ok(self, document: dict[str, object]) -> None:
                payload = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _answer_fault(self, fault: Fault) -> None:
                document: dict[str, object] = {"__type": fault.code, "Message": "Rate exceeded"}
                if fault.retry_after is not None:
                    document["RetryAfterSeconds"] = fault.retry_after
                payload = json.dumps(document).encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-ErrorType", fault.code)
                if fault.retry_after is not None:
                    self.send_header("Retry-After", str(int(fault.retry_after)))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def fail(
        self,
        operation: str,
        *,
        times: int = 1,
        status: int = 400,
        code: str = "ThrottlingException",
        retry_after: float | None = None,
    ) -> None:
        with self._lock:
            self._faults[operation] = Fault(status, code, times, retry_after)

    def swallow(self, operation: str, answer: dict[str, object]) -> None:
        """Answer ``operation`` with success and this body, never forwarding it: AWS said
        yes and kept nothing."""
        self.swallowed[operation] = answer

    def _take(self, operation: str) -> Fault | None:
        with self._lock:
            self.calls[operation] += 1
            fault = self._faults.get(operation)
            if fault is None or fault.times <= 0:
                return None
            fault.times -= 1
            return fault

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
