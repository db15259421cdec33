"""Golden files of rendered output (tests/golden/): one switch, ``UPDATE_GOLDEN=1``, rewrites
every one of them instead of comparing (README, "Tests")."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "golden"


def updating() -> bool:
    """The run rewrites the golden files: ``UPDATE_GOLDEN=1`` (nothing else counts)."""
    return os.environ.get("UPDATE_GOLDEN") == "1"


def assert_golden(name: str, actual: str) -> None:
    """Compare ``actual`` with ``tests/golden/<name>`` byte for byte (or rewrite it)."""
    path = ROOT / name
    if updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert actual.encode("utf-8") == path.read_bytes(), (
        f"{name} differs from its golden file: UPDATE_GOLDEN=1 accepts a deliberate change"
    )
