"""The demo's life through its own configuration: the manual edit it makes once a minute is
named on the page ("added by … in the dashboard"), vault-api's pushes are vault-api's."""

from __future__ import annotations

from pathlib import Path

from support import T0, FixedClock

from exporter.core.wording import hint
from exporter.demo.command import demo_config
from exporter.demo.life import DEMO_EDITOR, DemoLife
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.runtime.wiring import build_runtime


def test_the_demos_manual_edit_is_attributed_to_its_editor(tmp_path: Path) -> None:
    database, clock = tmp_path / "vault.db", FixedClock(T0)
    with CloudflareSimulator(per_page_cap=50, wall_clock=clock) as simulator:
        build_sample(database, simulator, clock())
        config = demo_config(database, simulator.base_url, "127.0.0.1:9", None)
        assert config.vault_api_actors == ["vault-api@demo-account.example"]
        services = build_runtime(config, clock=clock).services
        life = DemoLife(database, simulator, 60)
        services.checker.check_all("startup")
        clock.advance(seconds=20)
        life._vault_gains_member()
        life._manual_extra_in_cloudflare()
        life._cloudflare_catches_up()  # vault-api pushes the new hire
        clock.advance(seconds=40)  # the demo checks every minute
        snapshot = services.checker.check_all("schedule")

    [contractor] = snapshot.checks["administrators"].extra
    assert hint(contractor, clock()) == f"added by {DEMO_EDITOR} in the dashboard just now"
    assert str(snapshot.checks["developers"].status) == "synced"
    assert snapshot.manual_changes["administrators"] == 1
    assert snapshot.manual_changes["developers"] == 0  # vault-api's push is not manual
    assert snapshot.attribution_up is True
