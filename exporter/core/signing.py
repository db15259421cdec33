"""Standard Webhooks 1.0 signatures (docs/webhooks.md): what a receiver checks, nothing else.

A secret is ``whsec_`` followed by the base64 of its bytes. A message is signed as
``v1,<base64 of HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``, the timestamp in whole
seconds since the epoch: the one sent in ``webhook-timestamp``, the time of the attempt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24


class BadSecret(ValueError):
    """Not a usable webhook secret; the message never repeats the value."""


def decode_secret(text: str) -> bytes:
    """The key bytes of ``whsec_<base64>``, at least ``MIN_SECRET_BYTES`` long."""
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise BadSecret(f"must start with {SECRET_PREFIX} followed by base64")
    encoded = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret(f"must be {SECRET_PREFIX} followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise BadSecret(f"must hold at least {MIN_SECRET_BYTES} bytes once base64-decoded")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one delivery attempt (the same id on every retry)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
    }
