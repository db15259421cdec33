"""Time as text: one "time ago" for the page, the hints (API, CLI, mail) and the digest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exporter.core.times import time_ago


@pytest.mark.parametrize(
    ("elapsed", "text"),
    [
        (timedelta(seconds=-5), "just now"),  # a clock a little ahead of ours
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=1), "1 min ago"),
        (timedelta(minutes=59, seconds=59), "59 min ago"),
        (timedelta(hours=2, minutes=30), "2 h ago"),
        (timedelta(hours=23, minutes=59), "23 h ago"),
        (timedelta(days=3, hours=23), "3 d ago"),
    ],
)
def test_the_largest_whole_unit_with_a_space_before_it(elapsed: timedelta, text: str) -> None:
    assert time_ago(elapsed.total_seconds()) == text
