"""The feed's thread in the demo's own configuration: a manual edit in the simulated
dashboard is checked by the poller, with no full listing, within seconds."""

from __future__ import annotations

import time
from pathlib import Path

from exporter.clock import utc_now
from exporter.demo.command import DEMO_EDITOR, demo_config
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.runtime.feed_poller import FeedPoller
from exporter.runtime.wiring import build_runtime


def test_a_manual_edit_in_the_demo_is_checked_by_the_poller(tmp_path: Path) -> None:
    database = tmp_path / "vault.db"
    with CloudflareSimulator(per_page_cap=50) as simulator:
        build_sample(database, simulator, utc_now())
        config = demo_config(database, simulator.base_url, "127.0.0.1:9", None)
        services = build_runtime(config).services
        services.cycle.check_all("schedule")
        assert services.feed is not None
        admins = next(g for g in simulator.groups() if g["name"] == "administrators")
        include = [*admins["include"], {"email": {"email": "contractor@example.org"}}]
        simulator.set_include(admins["id"], include, DEMO_EDITOR)
        listings_before = _listings(simulator)
        poller = FeedPoller(services.feed, first_delay=0.05)
        poller.start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and services.feed.stats().checks == 0:
                time.sleep(0.05)
        finally:
            poller.stop()
        extra = services.snapshots.current.checks["administrators"].extra
        assert [m.email for m in extra] == ["contractor@example.org"]
        assert _listings(simulator) == listings_before


def _listings(simulator: CloudflareSimulator) -> int:
    return sum(path.endswith("/access/groups") for _, path, _ in simulator.request_log)
