"""A D1 write whose answer was lost after D1 committed it ("Network connection lost").

Every write batch carries an idempotency key (``sys_infra_drift_write``): the batch is sent
again when its answer was lost and it had not landed, and never applied twice when it had.
Both D1 backends (the simulator and workerd's own D1) can commit and then lose the answer.
"""

from __future__ import annotations

import json

from support.d1_world import World

from exporter.core.model import Status
from exporter.service.syncer import SyncRequest
from exporter.vault.store import MailRecord

SYNCED_AFTER = {
    "administrators": "synced",
    "developers": "synced",
    "lms-instructors": "synced",
    "lms-viewer": "pending",
    "sales-team": "error",
}


def count(world: World, table: str, where: str = "1 = 1") -> int:
    return int(world.sql(f"SELECT count(*) FROM {table} WHERE {where}")[0][0])


def test_writes_whose_answers_were_lost_are_applied_once(d1_backend: World) -> None:
    backend = d1_backend
    services = backend.services()
    services.checker.check_all("cli")
    # From here on every write commits and then loses its answer: the sync's audit row, its
    # bookkeeping, the check after it (with the revocation of olduser), a mail, two cycles.
    backend.lose_answers(1_000)
    [outcome] = services.syncer.sync(SyncRequest(["lms-instructors"], actor="test"))
    assert str(outcome.result) == "synced"
    backend.clock.advance(minutes=1)
    snapshot = services.checker.check_all("schedule")
    backend.clock.advance(minutes=1)
    services.vault.record_mail(MailRecord(backend.clock(), "digest", "sent", 2))
    cleared = services.vault.clear_ignore("developers")
    backend.clear_d1_faults()
    backend.clock.advance(minutes=1)
    last = services.checker.check_all("schedule")

    # The statuses are right, in the Vault and in the snapshot (/metrics).
    assert dict(backend.sql("SELECT audience, sync_status FROM sys_infra_state")) == SYNCED_AFTER
    for taken in (snapshot, last):
        assert {name: str(c.status) for name, c in taken.checks.items()} == SYNCED_AFTER
    assert last.checks["lms-instructors"].status is Status.SYNCED
    assert cleared is False  # there was no ignore: the lost answer does not invent one
    # Nothing twice: one audit row (finished), one revocation counted once, one cycle row per
    # cycle, one episode closed by the sync, one error row, one mail.
    audit = services.vault.audit(limit=10)
    assert [(row["audience"], row["result"]) for row in audit] == [("lms-instructors", "synced")]
    assert backend.sql("SELECT email FROM sys_infra_drift_revocation") == [("olduser@example.com",)]
    assert backend.sql("SELECT sum(count) FROM sys_infra_drift_revocation_total") == [(1,)]
    assert count(backend, "sys_infra_drift_cycle") == 3  # the sync's read-back is no cycle
    assert backend.sql(
        "SELECT close_reason, closed_by FROM sys_infra_drift_episode"
        " WHERE audience = 'lms-instructors'"
    ) == [("sync", "test")]
    assert count(backend, "sys_infra_drift_error") == 1
    assert count(backend, "sys_infra_drift_mail") == 1


def test_a_write_whose_answer_was_lost_and_that_did_not_land_is_sent_again(
    d1_backend: World,
) -> None:
    """A transient error before D1 applied anything: the key is not in the ledger, so the
    batch goes again (once), and the cycle is stored."""
    backend = d1_backend
    services = backend.services()
    services.checker.check_all("cli")
    before = count(backend, "sys_infra_drift_cycle")
    # Three refusals in a row: the client's own retries are spent, the store asks the
    # ledger (a read, answered), finds nothing and sends the batch a last time.
    services.vault.record_mail(MailRecord(backend.clock(), "digest", "sent", 2))
    backend.d1_fault(500, 7500, "D1_ERROR: Network connection lost.", times=3)
    services.vault.record_mail(MailRecord(backend.clock(), "digest", "sent", 3))
    assert count(backend, "sys_infra_drift_mail") == 2
    assert count(backend, "sys_infra_drift_cycle") == before


def test_one_lost_answer_writes_no_history_twice(d1_backend: World) -> None:
    """D1's client retries "Network connection lost": the retry of a batch that had landed
    must not add a second cycle row, revocation or audit row."""
    backend = d1_backend
    services = backend.services()
    backend.lose_answers(1)
    services.checker.check_all("cli")
    assert count(backend, "sys_infra_drift_cycle") == 1
    # Someone removes the extra member in the dashboard: the next check records its revocation.
    [(group_id,)] = backend.sql(
        "SELECT provider_resource_id FROM sys_infra_state WHERE audience = 'lms-instructors'"
    )
    include = backend.simulator.group(group_id)["include"]
    kept = [rule for rule in include if "olduser" not in json.dumps(rule)]
    backend.simulator.set_include(group_id, kept, by="admin@example.com")
    backend.clock.advance(minutes=1)
    backend.lose_answers(1)
    services.checker.check_all("schedule")
    assert backend.sql("SELECT email FROM sys_infra_drift_revocation") == [("olduser@example.com",)]
    assert backend.sql("SELECT sum(count) FROM sys_infra_drift_revocation_total") == [(1,)]
    assert count(backend, "sys_infra_drift_cycle") == 2
    backend.lose_answers(1)  # the audit row written before the PUT
    [outcome] = services.syncer.sync(SyncRequest(["lms-instructors"], actor="test"))
    assert str(outcome.result) == "synced"
    assert count(backend, "sys_infra_drift_audit") == 1
