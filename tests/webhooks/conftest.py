"""The webhook tests run on the wall clock's day: a receiver refuses a signature whose
timestamp is more than 5 minutes off, and a delivery gives up 24 h after its event."""

from __future__ import annotations

import pytest
from support import FixedClock

from exporter.clock import utc_now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(utc_now().replace(microsecond=0))
