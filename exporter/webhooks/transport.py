"""One POST to a webhook receiver, with the standard library's HTTP client.

Redirects are not followed (a receiver that moved answers 410, or is reconfigured). The
answer's body is read and dropped: only its status counts.
"""

from __future__ import annotations

import base64
import http.client
from typing import Protocol
from urllib.parse import urlsplit


class Transport(Protocol):
    """Sends one body; answers the HTTP status, or raises OSError when no answer came."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...


class HttpTransport:
    def __init__(self, timeout: float = 10.0, user_agent: str = "vault-drift") -> None:
        self.timeout, self.user_agent = timeout, user_agent

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        host = parts.hostname or ""
        connection = kind(host, parts.port, timeout=self.timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {
            **headers,
            "content-type": "application/json",
            "user-agent": self.user_agent,
        }
        if parts.username is not None:  # https://user:pass@host/ : basic auth, as curl would
            login = f"{parts.username}:{parts.password or ''}".encode()
            sent["authorization"] = "Basic " + base64.b64encode(login).decode()
        try:
            connection.request("POST", target, body=body, headers=sent)
            response = connection.getresponse()
            response.read()
            return response.status
        except http.client.HTTPException as exc:  # a malformed answer: as good as none
            raise OSError(f"bad HTTP answer: {type(exc).__name__}") from None
        finally:
            connection.close()


def receiver_label(url: str) -> str:
    """How logs name a receiver: scheme and host only (path and query may hold a token)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"
