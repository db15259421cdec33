"""Log lines: JSON for shippers, text for a person at a terminal, secrets never shown."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from exporter.runtime.logs import JsonFormatter, TextFormatter, formatter_for

SECRET = "cf-token-0123456789abcdef"


def record(msg: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("exporter.cycle", logging.WARNING, __file__, 1, msg, None, None)
    entry.__dict__.update(extra)
    return entry


def test_text_line_has_time_level_message_then_the_extras() -> None:
    line = TextFormatter([]).format(
        record("check done", audiences=24, trigger="schedule", reason="two words")
    )
    stamp, level, rest = line.split(" ", 2)
    assert len(stamp) == 8 and stamp.count(":") == 2
    assert level == "WARNING"
    assert rest.endswith('check done audiences=24 trigger=schedule reason="two words"')


def test_both_formats_redact_secrets_in_messages_and_extras() -> None:
    for formatter in (TextFormatter([SECRET]), JsonFormatter([SECRET])):
        line = formatter.format(record(f"token {SECRET} refused", header=f"Bearer {SECRET}"))
        assert SECRET not in line and "<redacted>" in line


def test_json_line_is_one_object_with_the_extras() -> None:
    entry = json.loads(JsonFormatter([]).format(record("check done", audiences=3)))
    assert entry["msg"] == "check done" and entry["audiences"] == 3
    assert entry["level"] == "warning" and entry["logger"] == "exporter.cycle"


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    primary, secondary = os.openpty()
    try:
        with os.fdopen(secondary, "w") as terminal:
            assert isinstance(formatter_for("auto", terminal, []), TextFormatter)
            assert isinstance(formatter_for("json", terminal, []), JsonFormatter)
    finally:
        os.close(primary)
    pipe = io.StringIO()
    assert isinstance(formatter_for("auto", pipe, []), JsonFormatter)
    assert isinstance(formatter_for("text", pipe, []), TextFormatter)


@pytest.mark.parametrize("value", ["yaml", "JSONL", ""])
def test_an_unknown_log_format_is_a_configuration_error(value: str) -> None:
    from exporter.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"log_format|LOG_FORMAT"):
        load_config(None, {"VAULT_DRIFT_LOG_FORMAT": value})
