"""The demo's little life: every minute the sample Vault gains or loses a member, or someone
edits a Cloudflare group by hand, so drift opens and closes; and people log in.

Who is in a group uses it: when the world is built every member of a group logs in (one
Access session each, ``log_members_in``), and whoever joins a group later logs in when they
are in. So when someone leaves, the simulator's sessions (``GET /_sim/sessions``) show
vault-drift ending theirs (README, "Effective removal"): the contractor added by hand and
removed by hand (an observed removal), and the new hire Vault removes (seen extra after
vault-api's notification, then removed by vault-api's push, or by auto-sync ``remove_only``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.clock import utc_now
from exporter.demo.sample import add_member
from exporter.demo.simulator import CloudflareSimulator
from exporter.demo.simulator_audit import Actor

log = logging.getLogger("vault_drift.demo")

# Who edits the demo's groups, as Cloudflare's audit log names them: a person in the
# dashboard, and vault-api pushing Vault's changes (VAULT_DRIFT_VAULT_API_ACTORS names it).
DEMO_EDITOR = "jane@corp.example"
DEMO_VAULT_API = Actor("vault-api@demo-account.example")
NEWHIRE, CONTRACTOR = "newhire@example.com", "contractor@example.org"


def log_members_in(simulator: CloudflareSimulator) -> int:
    """Every email an ``email`` rule of a group names opens an application: one session each
    (``login`` refuses those an ``exclude`` rule names). Returns how many logged in."""
    emails = {
        rule["email"]["email"].lower()
        for group in simulator.groups()
        for rule in group.get("include", [])
        if isinstance(rule.get("email"), dict) and isinstance(rule["email"].get("email"), str)
    }
    return sum(simulator.login(email) for email in sorted(emails))


class DemoLife:
    """Edits that keep the demo moving: each step opens or closes some drift."""

    def __init__(
        self,
        database: Path,
        simulator: CloudflareSimulator,
        every: float,
        notify: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.database, self.simulator, self.every = database, simulator, every
        self.notify = notify  # on D1: vault-api's change notification after a member change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-life", daemon=True)
        self.steps: list[Callable[[], None]] = [
            self._vault_gains_member,
            self._manual_extra_in_cloudflare,
            self._cloudflare_catches_up,
            self._manual_extra_removed,
            self._vault_loses_member,
            self._cloudflare_catches_up_removal,
        ]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        step = 0
        while not self._stop.wait(self.every):
            try:
                self.steps[step % len(self.steps)]()
            except Exception:
                log.exception("demo step failed")
            step += 1

    def _group(self, name: str) -> dict[str, Any]:
        return next(g for g in self.simulator.groups() if g["name"] == name)

    def _notify(self) -> None:
        if self.notify is not None:
            self.notify(["developers"])

    def _vault_gains_member(self) -> None:
        with sqlite3.connect(self.database) as conn:
            add_member(conn, NEWHIRE, "g-2", utc_now())
        conn.close()
        self._notify()

    def _cloudflare_catches_up(self) -> None:
        """vault-api pushes the new hire (through the API, with its own token); she logs in."""
        group = self._group("developers")
        self.simulator.set_include(
            group["id"],
            [*group["include"], {"email": {"email": NEWHIRE}}],
            DEMO_VAULT_API,
            interface="API",
        )
        self.simulator.login(NEWHIRE)

    def _manual_extra_in_cloudflare(self) -> None:
        """Someone adds a contractor by hand in the dashboard, and she logs in at once: the
        page names her, and who added her."""
        group = self._group("administrators")
        self.simulator.set_include(
            group["id"],
            [*group["include"], {"email": {"email": CONTRACTOR}}],
            DEMO_EDITOR,
        )
        self.simulator.login(CONTRACTOR)

    def _manual_extra_removed(self) -> None:
        """The contractor is removed by hand: a removal vault-drift observes, and it ends her
        sessions, which the removal alone does not."""
        group = self._group("administrators")
        keep = [r for r in group["include"] if r != {"email": {"email": CONTRACTOR}}]
        self.simulator.set_include(group["id"], keep, DEMO_EDITOR)

    def _vault_loses_member(self) -> None:
        """vault-api removes the new hire from Vault and notifies: she is extra now."""
        with sqlite3.connect(self.database) as conn:
            conn.execute("DELETE FROM iam_user_group WHERE user_id = 'u-newhire'")
        conn.close()
        self._notify()

    def _cloudflare_catches_up_removal(self) -> None:
        """vault-api pushes the removal (unless auto-sync ``remove_only`` did it already)."""
        group = self._group("developers")
        keep = [r for r in group["include"] if r != {"email": {"email": NEWHIRE}}]
        if keep != group["include"]:
            self.simulator.set_include(group["id"], keep, DEMO_VAULT_API, interface="API")
