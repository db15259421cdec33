"""What a check costs on D1, in requests (each one counts against Cloudflare's API budget):
one read batch, then one write. And what it reads in that one batch is what the separate
reads gave: the same on the three backends.

The counts are taken on the simulated D1 server (requests it answered), not timed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from support.d1_world import World

from exporter.core.exemptions import Exemption, Side
from exporter.core.model import Audience, Ignore
from exporter.core.provider import CLOUDFLARE_ACCESS, Listing


def d1_requests(world: World) -> int:
    assert world.d1_sim is not None
    return world.d1_sim.stats()["requests"]


def test_a_full_check_on_d1_is_one_read_batch_and_one_write(d1_sim_backend: World) -> None:
    services = d1_sim_backend.services()
    services.checker.check_all("cli")  # the first check learns each audience's size
    before = d1_requests(d1_sim_backend)
    snapshot = services.checker.check_all("schedule")
    assert d1_requests(d1_sim_backend) - before == 2
    assert snapshot.vault_up and snapshot.counts()["synced"] == 2


def test_a_partial_check_on_d1_is_one_read_batch_and_one_write(d1_sim_backend: World) -> None:
    services = d1_sim_backend.services()
    services.checker.check_all("cli")
    before = d1_requests(d1_sim_backend)
    services.checker.check_audiences(["developers"], "change")
    assert d1_requests(d1_sim_backend) - before == 2


def test_a_check_reads_what_another_process_wrote(backend: World) -> None:
    """Settings, ignores, exemptions and the revocation totals written outside this process
    (a one-shot CLI) are in the snapshot after the next full check, on every backend."""
    services = backend.services()
    services.checker.check_all("cli")
    other = backend.store()
    now = backend.clock()
    other.save_settings(replace(services.snapshots.current.settings, history_retention_days=30))
    other.set_ignore("developers", Ignore(now + timedelta(days=1), "migration", "cli"), now)
    other.add_exemption(
        Exemption(
            "lms-instructors", "alice@example.com", Side.MISSING, "on leave", "cli",
            now, now + timedelta(days=7),
        )
    )  # fmt: skip
    backend.sql(
        "INSERT INTO sys_infra_drift_revocation_total (namespace, provider, bucket, count,"
        " seconds) VALUES ('ns-cli', 'cloudflare_access', '+Inf', 3, '12.5')"
    )
    snapshot = services.checker.check_all("schedule")
    assert snapshot.settings.history_retention_days == 30
    assert snapshot.ignores["developers"].reason == "migration"
    assert [e.email for e in snapshot.exemptions["lms-instructors"]] == ["alice@example.com"]
    assert {m.email for m in snapshot.checks["lms-instructors"].missing} == {"bob@example.com"}
    totals = snapshot.revocations[("ns-cli", "cloudflare_access")]
    assert totals.counts == {"+Inf": 3} and totals.seconds == 12.5


def test_an_ignore_made_while_a_check_runs_is_kept(backend: World) -> None:
    """The operator ignores an audience while a full check reads Cloudflare: the check's
    snapshot must not put back the ignores it read before (auto-sync would then sync the
    audience the operator just ignored)."""
    services = backend.services()
    services.checker.check_all("cli")
    provider = services.checker.providers.get(CLOUDFLARE_ACCESS)
    assert provider is not None
    listing = provider.actual_members
    until = backend.clock() + timedelta(hours=2)

    def ignoring_meanwhile(audiences: list[Audience]) -> Listing:
        services.decisions.ignore("lms-instructors", until, "looking into it", "page:jane")
        return listing(audiences)

    provider.actual_members = ignoring_meanwhile  # type: ignore[method-assign]
    snapshot = services.checker.check_all("schedule")
    assert snapshot.ignores["lms-instructors"].reason == "looking into it"
    assert services.snapshots.current.ignore_of("lms-instructors", backend.clock()) is not None
