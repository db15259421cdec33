"""The demo shows a leaver's sessions ended (README, "Demo"): every member of a group logs in
when the world is built, whoever joins later logs in, and when the demo's life removes someone
the exporter's revocation empties their sessions in the simulator's sessions document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from support import T0, FixedClock

from exporter.demo.command import banner, demo_config, sessions_url
from exporter.demo.life import CONTRACTOR, NEWHIRE, DemoLife, log_members_in
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.runtime.wiring import build_runtime

OLDUSER = "olduser@example.com"  # extra in lms-instructors from the start


# Live sessions of (contractor, new hire) after each step of the demo's life, then after the
# check that follows it. The steps: Vault gains the new hire; the contractor is added by hand
# (she logs in); vault-api pushes the new hire (she logs in); the contractor is removed by hand
# (her session lives on until the check); the new hire leaves Vault (extra); vault-api pushes
# her removal. With auto-sync remove_only the exporter removes each extra member itself.
OFF = (
    [(0, 0), (1, 0), (1, 1), (1, 1), (0, 1), (0, 1)],
    [(0, 0), (1, 0), (1, 1), (0, 1), (0, 1), (0, 0)],
    {CONTRACTOR: "observed_removal", NEWHIRE: "observed_removal"},
)
REMOVE_ONLY = (
    [(0, 0), (1, 0), (0, 1), (0, 1), (0, 1), (0, 0)],
    [(0, 0), (0, 0), (0, 1), (0, 1), (0, 0), (0, 0)],
    # olduser, extra from the start, is removed (and revoked) at the first check
    {OLDUSER: "auto_sync", CONTRACTOR: "auto_sync", NEWHIRE: "auto_sync"},
)


@pytest.mark.parametrize(("auto_sync", "expected"), [("off", OFF), ("remove_only", REMOVE_ONLY)])
def test_the_demos_leavers_sessions_go_from_live_to_ended(
    tmp_path: Path, auto_sync: str, expected: tuple[Any, Any, Any]
) -> None:
    database, clock = tmp_path / "vault.db", FixedClock(T0)
    with CloudflareSimulator(per_page_cap=50, wall_clock=clock) as simulator:
        build_sample(database, simulator, clock())
        assert log_members_in(simulator) == 14  # every email rule of the three groups: 7 + 2 + 5
        sessions = simulator.sessions
        assert sessions.live("root@example.com") == sessions.live("erin@example.com") == 1
        config = demo_config(database, simulator.base_url, "127.0.0.1:9", None)
        services = build_runtime(config, clock=clock).services
        services.decisions.update_settings({"auto_sync": auto_sync})
        services.cycle.check_all("startup")
        life = DemoLife(database, simulator, 60)
        stepped, checked = [], []
        for step in life.steps:  # one a minute, a check after each, as the demo runs
            step()
            stepped.append((sessions.live(CONTRACTOR), sessions.live(NEWHIRE)))
            clock.advance(seconds=60)
            services.cycle.check_all("schedule")
            checked.append((sessions.live(CONTRACTOR), sessions.live(NEWHIRE)))
        url = sessions_url(simulator.base_url)
        assert f"sessions      {url}" in banner(config)
        document = requests.get(url, timeout=5).json()

    assert (stepped, checked) == expected[:2]
    reasons = expected[2]
    assert {r["email"]: r["ended"] for r in document["revocations"]} == dict.fromkeys(reasons, 1)
    assert not set(reasons) & set(document["sessions"])
    if OLDUSER not in reasons:  # extra, never removed: its session lives on
        assert document["sessions"][OLDUSER] == 1
    assert {r.email: r.reason for r in services.vault.session_revocations()} == reasons
