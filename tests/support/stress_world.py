"""What the stress tests share: a world whose truth is known, a simulator that remembers every
request and every state its groups went through, the real ``vault-drift serve`` process, and
the judge that compares a published status with the truth at the time of its check."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from exporter.clock import utc_now
from exporter.core.times import format_time, parse_time
from exporter.demo.sample import create_schema
from exporter.demo.simulator import CloudflareSimulator
from support import free_port, wait_for

LONG = os.environ.get("VAULT_DRIFT_LONG", "").lower() in ("1", "true", "yes")
EXE = str(Path(sys.executable).parent / "vault-drift")
ADMIN = "stress-admin-token-0123456789abcdef"
READ = "stress-read-token-0123456789abcdef"
CF_TOKEN = "stress-cloudflare-token-0123456789"
ACCOUNT = "stress-account"
ADDED = "2026-11-01T00:00:00Z"
OTHER_RULES: tuple[dict[str, Any], ...] = (
    {"email_domain": {"domain": "contractors.example.com"}},
    {"ip": {"ip": "10.0.0.0/8"}},
    {"brand_new_rule_type": {"whatever": [1, 2, 3]}},
)
FUTURE_RULE_TYPE = "brand_new_rule_type"  # declared on the simulator: must pass through verbatim


def email_rule(email: str) -> dict[str, Any]:
    return {"email": {"email": email}}


def emails_of(include: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(
        str(rule["email"]["email"]).strip().lower()
        for rule in include
        if set(rule) == {"email"} and isinstance(rule["email"], dict) and "email" in rule["email"]
    )


def non_email_rules(include: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for rule in include if set(rule) != {"email"}]


# -- the world ------------------------------------------------------------------------------


@dataclass
class AudienceSpec:
    name: str
    members: list[str]  # Vault's expected members (lowercase)
    include: list[dict[str, Any]] | None  # the Cloudflare group's include; None: pending
    group_id: str | None = None


@dataclass
class World:
    path: Path
    audiences: dict[str, AudienceSpec]

    def expected(self, name: str) -> frozenset[str]:
        return frozenset(self.audiences[name].members)

    def by_group(self) -> dict[str, AudienceSpec]:
        return {a.group_id: a for a in self.audiences.values() if a.group_id is not None}


def write_world(path: Path, sim: CloudflareSimulator, specs: list[AudienceSpec]) -> World:
    """A Vault DB (one organisation, group and application per audience) and its groups."""
    sim.future_rule_types.add(FUTURE_RULE_TYPE)
    create_schema(path)
    with sqlite3.connect(path) as conn:
        for index, spec in enumerate(specs):
            org, group = f"o{index}", f"g{index}"
            conn.execute("INSERT INTO iam_organization VALUES (?, ?)", (org, f"org {index}"))
            conn.execute("INSERT INTO iam_group VALUES (?, ?, ?)", (group, org, spec.name))
            conn.execute(
                "INSERT INTO iam_application VALUES (?, ?, ?, ?)",
                (f"a{index}", org, spec.name, json.dumps([spec.name])),
            )
            for email in spec.members:
                conn.execute(
                    "INSERT OR IGNORE INTO iam_user (id, email, status, created_at)"
                    " VALUES (?, ?, 'active', ?)",
                    (email, email, ADDED),
                )
                conn.execute("INSERT INTO iam_user_group VALUES (?, ?, ?)", (email, group, ADDED))
            if spec.include is not None:
                spec.group_id = sim.add_group(spec.name, spec.include)
            conn.execute(
                "INSERT INTO sys_infra_state (audience, namespace, provider, provider_resource_id)"
                " VALUES (?, ?, 'cloudflare_access', ?)",
                (spec.name, f"ns-{index % 3}", spec.group_id),
            )
    return World(path, {s.name: s for s in specs})


def add_vault_member(world: World, audience: str, email: str) -> None:
    """vault-api grants ``audience`` to a new user (a write the exporter's watcher sees)."""
    index = list(world.audiences).index(audience)
    with sqlite3.connect(world.path, timeout=10) as conn:
        conn.execute(
            "INSERT OR IGNORE INTO iam_user (id, email, status, created_at)"
            " VALUES (?, ?, 'active', ?)",
            (email, email, ADDED),
        )
        conn.execute("INSERT INTO iam_user_group VALUES (?, ?, ?)", (email, f"g{index}", ADDED))
    world.audiences[audience].members.append(email)


def mixed_world(path: Path, sim: CloudflareSimulator, count: int = 24) -> World:
    """In sync, missing, extra, mixed case, non-email rules between emails, one audience a
    guard protects (a mass removal), one pending."""
    specs = []
    for i in range(count):
        members = [f"u{j}.a{i}@example.com" for j in range(3 + i % 9)]
        shown = list(members)
        if i % 4 == 1:
            shown = shown[1:]  # one missing
        if i % 4 == 2:
            shown.append(f"stale.a{i}@example.com")  # one extra
        rules = [email_rule(e.upper() if j == 0 and i % 3 == 0 else e) for j, e in enumerate(shown)]
        if i % 2 == 0:  # non-email rules before, between and after the emails
            rules.insert(0, OTHER_RULES[0])
            rules.insert(len(rules) // 2, OTHER_RULES[1])
            rules.append(OTHER_RULES[2])
        specs.append(AudienceSpec(f"aud-{i:02d}", members, rules))
    guarded = [f"keep{j}@example.com" for j in range(10)]
    extras = [f"extra{j}@example.com" for j in range(12)]
    specs.append(
        AudienceSpec(
            "guarded", guarded, [email_rule(e) for e in guarded + extras] + [OTHER_RULES[1]]
        )
    )
    specs.append(AudienceSpec("pending-one", ["p1@example.com"], None))
    return write_world(path, sim, specs)


# -- a simulator that remembers ---------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    status: int
    arrived: float  # monotonic
    answered: float  # monotonic
    retry_after: float | None
    body: Any


@dataclass
class StateLog:
    """Every state each group was in, with the wall time it began."""

    states: dict[str, list[tuple[float, list[dict[str, Any]]]]] = field(default_factory=dict)

    def record(self, group_id: str, include: list[dict[str, Any]], at: float) -> None:
        history = self.states.setdefault(group_id, [])
        if not history or history[-1][1] != include:
            history.append((at, include))

    def between(self, group_id: str, start: float, end: float) -> list[list[dict[str, Any]]]:
        """The state in force at ``start`` and every state that began up to ``end``."""
        history = self.states.get(group_id, [])
        at_start = [inc for t, inc in history if t <= start][-1:]
        return at_start + [inc for t, inc in history if start < t <= end]


class RecordingSimulator(CloudflareSimulator):
    """The simulator, plus a timed log of API requests and of every group state."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests: list[Request] = []
        self.log = StateLog()
        self._record_lock = threading.Lock()

    def add_group(self, name: str, include: list[Any], *args: Any, **kwargs: Any) -> str:
        group_id = super().add_group(name, include, *args, **kwargs)
        self.log.record(group_id, list(include), 0.0)
        return group_id

    def set_include(self, group_id: str, include: list[Any]) -> None:
        with self._record_lock:
            super().set_include(group_id, include)
            self.log.record(group_id, list(include), time.time())

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        arrived = time.monotonic()
        reply = super().handle(method, raw_path, headers, body)
        answered = time.monotonic()
        if raw_path.startswith("/_sim/"):
            return reply
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        retry = reply.headers.get("retry-after")
        with self._record_lock:
            self.requests.append(
                Request(
                    method,
                    raw_path.split("?")[0],
                    reply.status,
                    arrived,
                    answered,
                    float(retry) if retry else None,
                    parsed,
                )
            )
            if method in ("PUT", "POST", "DELETE"):
                for group in self.groups():
                    self.log.record(group["id"], group["include"], time.time())
        return reply


def pause_violations(log: list[Request], slack: float = 0.05, in_flight: float = 0.25) -> list[str]:
    """Requests that reached Cloudflare while a 429's retry-after was still running.

    A request another thread sent before the 429's answer reached the client can arrive just
    after that answer (``in_flight``): no client can hold back what has already left it."""
    ordered = sorted(log, key=lambda r: r.arrived)
    problems = []
    for i, limited in enumerate(ordered):
        if limited.status != 429 or limited.retry_after is None:
            continue
        resume = limited.answered + limited.retry_after - slack
        for later in ordered[i + 1 :]:
            if later.arrived > resume:
                break
            if later.arrived > limited.answered + in_flight:
                problems.append(
                    f"{later.method} {later.path} {resume - later.arrived:.2f}s before the"
                    f" retry-after of a 429 ended (the 429: {limited.method} {limited.path},"
                    f" retry-after {limited.retry_after}s)"
                )
    return problems


# -- the judge --------------------------------------------------------------------------------


def judge(item: dict[str, Any], world: World, log: StateLog, margin: float) -> str | None:
    """Why a published item contradicts the truth, or None.

    ``synced`` / ``drift`` (with its members) must be the truth of a state the group really
    was in while the item's check ran: within ``margin`` seconds before its ``last_check_at``.
    ``error`` never contradicts anything; ``pending`` only for an audience without a group.
    """
    spec = world.audiences[item["audience"]]
    status = item["status"]
    if spec.group_id is None:
        return None if status == "pending" else f"{spec.name}: {status}, has no group"
    if status == "error":
        return None
    if status not in ("synced", "drift"):
        return f"{spec.name}: unexpected status {status}"
    checked = parse_time(item["last_check_at"])
    assert checked is not None
    at = checked.timestamp()
    expected = world.expected(spec.name)
    for include in log.between(spec.group_id, at - margin, at + 1.5):
        actual = emails_of(include)
        if status == "synced" and actual == expected:
            return None
        if status == "drift" and actual != expected:
            details = item.get("drift_details") or {}
            missing = {e.lower() for e in details.get("missing", [])}
            extra = {e.lower() for e in details.get("extra", [])}
            if missing == expected - actual and extra == actual - expected:
                return None
    return f"{spec.name}: published {status} {item.get('drift_details')} matches no real state"


def truth(world: World, sim: CloudflareSimulator, name: str) -> str:
    spec = world.audiences[name]
    if spec.group_id is None:
        return "pending"
    actual = emails_of(sim.group(spec.group_id)["include"])
    return "synced" if actual == world.expected(name) else "drift"


def correct_plan(spec: AudienceSpec, initial: dict[str, Any], put: dict[str, Any]) -> str | None:
    """Why a PUT body is not the sync plan of docs/design.md ("Sync and its guards") for this group, or None."""
    problems = []
    if put.get("name") != initial["name"]:
        problems.append("name changed")
    for key in ("exclude", "require"):
        if put.get(key, []) != initial[key]:
            problems.append(f"{key} changed")
    include = put.get("include") or []
    if non_email_rules(include) != non_email_rules(initial["include"]):
        problems.append("non-email rules not intact and in order")
    emails = [r["email"]["email"] for r in include if set(r) == {"email"}]
    if len(emails) != len(set(emails)):
        problems.append("duplicate email rules")
    if emails_of(include) != frozenset(spec.members):
        problems.append("emails are not Vault's expected set")
    return f"{spec.name}: " + ", ".join(problems) if problems else None


# -- the real process ----------------------------------------------------------------------


BIND_REFUSED = (2, 3)  # serve's exit code for an unusable address, and uvicorn's


class Served:
    """``vault-drift serve`` as a subprocess; stderr (JSON log lines) goes to ``log``."""

    def __init__(
        self, database: Path, base_url: str, log: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.log = log
        self.env = {
            **os.environ,
            "VAULT_DRIFT_DATABASE": str(database),
            "CLOUDFLARE_API_TOKEN": CF_TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "CLOUDFLARE_BASE_URL": base_url,
            "VAULT_DRIFT_ADMIN_TOKEN": ADMIN,
            "VAULT_DRIFT_READ_TOKEN": READ,
            "VAULT_DRIFT_CHECK_INTERVAL": "30s",
            **(extra_env or {}),
        }
        self.env = {k: v for k, v in self.env.items() if v != ""}
        self.session = requests.Session()
        self.call_timeout = 90.0  # seconds an API answer may take (the chaos soak's is longer)
        self._start()

    def _start(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env["VAULT_DRIFT_LISTEN"] = f"127.0.0.1:{self.port}"
        with self.log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [EXE, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def _port_was_taken(self) -> bool:
        """The free port was taken by another process (a test in the other pytest worker)
        between ``free_port`` and the bind: serve's own check of the address exits 2, a bind
        refused later uvicorn's 3. Not the product's fault: start again on another port."""
        if self.process.returncode not in BIND_REFUSED:
            return False
        tail = self.log.read_bytes()[-4096:].lower()
        if b"address already in use" not in tail:
            return False
        self._start()
        return True

    def wait_healthy(self, timeout: float = 30) -> Served:
        wait_for(self.healthy, timeout, "/healthz")
        return self

    def wait_ready(self, timeout: float = 30) -> Served:
        wait_for(
            lambda: (
                self.healthy()
                and self.session.get(f"{self.url}/readyz", timeout=2).status_code == 200
            ),
            timeout,
            "/readyz",
        )
        return self

    def healthy(self) -> bool:
        if self.process.poll() is not None and not self._port_was_taken():
            raise AssertionError(f"serve exited with {self.process.returncode}")
        return self.session.get(f"{self.url}/healthz", timeout=5).status_code == 200

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = ADMIN,
        timeout: float | None = None,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.session.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers=headers,
            timeout=timeout or self.call_timeout,
        )

    def metric(self, name: str) -> float | None:
        for line in self.session.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self.session.close()


def seed_settings(path: Path, **settings: Any) -> None:
    """Settings saved before the exporter starts (as a previous run through the API would)."""
    from exporter.core.settings import apply_settings
    from exporter.vault import SqliteStore

    store = SqliteStore(path).open(seed_interval=30)
    store.save_settings(apply_settings(store.settings(), settings))


def now_iso() -> str:
    return format_time(utc_now()) or ""


def iso(moment: datetime) -> str:
    return format_time(moment) or ""
