"""Logs on stderr, secrets redacted: JSON lines for log shippers, text for a person.

``VAULT_DRIFT_LOG_FORMAT=auto`` (the default) writes text when stderr is a terminal and JSON
lines when it is not; ``json`` or ``text`` force either.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class _Redacting(logging.Formatter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def redact(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, "<redacted>")
        return line

    @staticmethod
    def extras(record: logging.LogRecord) -> dict[str, Any]:
        """What the call passed in ``extra=``: the fields beyond the standard record's."""
        return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(_Redacting):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(self.extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, default=str))


class TextFormatter(_Redacting):
    """``12:04:05 INFO  check done audiences=24 drifting=3``: local time, level, message,
    then the extras as key=value (quoted when they hold a space)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).astimezone().strftime("%H:%M:%S")
        parts = [stamp, f"{record.levelname:<7}", record.getMessage()]
        parts += [f"{key}={_shown(value)}" for key, value in self.extras(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redact(line)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (" " in text or not text) else text


def formatter_for(fmt: str, stream: TextIO, secrets: list[str]) -> logging.Formatter:
    """``auto`` is text on a terminal, JSON elsewhere."""
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    return TextFormatter(secrets) if fmt == "text" else JsonFormatter(secrets)


def setup_logging(level: str, secrets: list[str], fmt: str = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(fmt, sys.stderr, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("urllib3").setLevel(logging.WARNING)
