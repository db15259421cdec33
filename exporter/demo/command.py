"""``vault-drift demo``: a sample Vault DB, a simulated Cloudflare on loopback, and ``serve``;
with moto installed, also one AWS audience in moto's IAM Identity Center (``aws_audience.py``).

A little life runs beside it (``life.py``): every minute the sample Vault gains or loses a
member, or someone edits a Cloudflare group by hand, so a Prometheus pointed at the demo sees
drift open and close; members log in, and leavers' sessions end.
"""

from __future__ import annotations

import json
import logging
import secrets
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from exporter.clock import utc_now
from exporter.config import Config, load_config
from exporter.core.document import drift_document
from exporter.core.snapshot import Snapshot
from exporter.core.table import drift_table
from exporter.demo import aws_audience
from exporter.demo.d1_simulator import D1Simulator
from exporter.demo.life import DEMO_EDITOR as DEMO_EDITOR  # re-exported: the editor's name
from exporter.demo.life import DEMO_VAULT_API, DemoLife, log_members_in
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.demo.simulator_logpush import LogpushSender
from exporter.runtime.server import check_listen, serve

log = logging.getLogger("vault_drift.demo")
LIFE_SECONDS = 60.0
DEMO_ACCOUNT_ID, DEMO_CLOUDFLARE_TOKEN = "demo-account", "demo-token"
DEMO_D1_DATABASE_ID = "00000000-0000-4000-8000-0000000000d1"


def run_demo(
    listen: str | None,
    config_file: str | None,
    life_seconds: float = LIFE_SECONDS,
    d1: bool = False,
    standby_pair: bool = False,
) -> int:
    with tempfile.TemporaryDirectory(prefix="vault-drift-demo-") as workdir:
        return _run_in(Path(workdir), listen, config_file, life_seconds, d1, standby_pair)


def _run_in(
    workdir: Path,
    listen: str | None,
    config_file: str | None,
    life: float,
    d1: bool = False,
    pair: bool = False,
) -> int:
    aws = aws_audience.start_local_store()
    try:
        with CloudflareSimulator(
            account_id=DEMO_ACCOUNT_ID, token=DEMO_CLOUDFLARE_TOKEN, per_page_cap=50
        ) as simulator:
            return _run_with(workdir, simulator, listen, config_file, life, d1, aws, pair)
    finally:
        if aws is not None:
            aws.stop()


def _run_with(
    workdir: Path,
    simulator: CloudflareSimulator,
    listen: str | None,
    config_file: str | None,
    life: float,
    d1: bool = False,
    aws: Any | None = None,
    pair: bool = False,
) -> int:
    database = workdir / "vault.db"
    build_sample(database, simulator, utc_now())
    log_members_in(simulator)  # each member of a group has an Access session
    if aws is not None:
        aws_audience.add_aws_audience(database, aws, utc_now())
        aws_audience.use_local_credentials()
    d1_sim = None
    if d1:  # the same sample, served by the simulated D1 REST API beside the groups
        d1_sim = D1Simulator(database, database_id=DEMO_D1_DATABASE_ID)
        simulator.attach_d1(d1_sim)
    config = demo_config(
        database,
        simulator.base_url,
        listen,
        config_file,
        d1_database=DEMO_D1_DATABASE_ID if d1 else None,
        aws=aws,
    )
    check_listen(config)
    print(banner(config, database if d1 else None, aws), flush=True)
    changes = DemoLife(database, simulator, life, notify=_notifier(config) if d1 else None)
    # Cloudflare's Logpush of the audit log, pushed to the exporter (README, "Change feed").
    logpush = LogpushSender(
        f"{config.effective_public_url()}/iam/drift/feed/logpush",
        f"Bearer {_secret(config.logpush_token)}",
    )
    simulator.audit.logpush = logpush
    logpush.start()
    changes.start()
    try:
        if pair:
            return _serve_pair(config, workdir)
        return serve(config, after_full_check=[_print_first_check()])
    finally:
        changes.stop()
        simulator.audit.logpush = None
        logpush.stop()
        if d1_sim is not None:
            d1_sim.close()


def _serve_pair(config: Config, workdir: Path) -> int:
    """Two replicas in their own processes (a kill -9 of the leader leaves the demo up)."""
    from exporter.demo.standby_pair import StandbyPair, second_listen

    check_listen(config.model_copy(update={"listen": second_listen(config)}))
    pair = StandbyPair(config, workdir)
    pair.start()
    print(pair.describe(), flush=True)
    try:
        pair.wait()
    finally:
        pair.stop()
    return 0


def _notifier(config: Config) -> Callable[[list[str]], None]:
    """What vault-api does after ADD_MEMBER / REMOVE_MEMBER: tell the exporter, never fail."""
    url = f"{config.effective_public_url()}/iam/drift/check"
    token = _secret(config.admin_token)

    def notify(audiences: list[str]) -> None:
        body = json.dumps({"audiences": audiences}).encode()
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                answer.read()
        except (OSError, ValueError) as exc:  # the member change stands whatever happens
            log.warning("change notification not delivered: %s", exc)

    return notify


def demo_config(
    database: Path,
    cloudflare_url: str,
    listen: str | None,
    config_file: str | None,
    d1_database: str | None = None,
    aws: Any | None = None,
) -> Config:
    """``serve``'s configuration on the sample world, with fresh tokens.

    The address comes from ``--listen``, else ``VAULT_DRIFT_LISTEN`` or the config file, as
    for ``serve``; the Vault DB, the Cloudflare side and the tokens are the demo's own.
    """
    return load_config(
        config_file,
        database=f"d1://{d1_database}" if d1_database else str(database),
        cloudflare_api_token=DEMO_CLOUDFLARE_TOKEN,
        cloudflare_account_id=DEMO_ACCOUNT_ID,
        cloudflare_base_url=cloudflare_url,
        listen=listen,  # None: not an override, so the environment or the file decide
        admin_token=f"demo-admin-{secrets.token_hex(8)}",
        read_token=f"demo-read-{secrets.token_hex(8)}",
        logpush_token=f"demo-logpush-{secrets.token_hex(8)}",
        check_interval="1m",
        vault_api_actors=DEMO_VAULT_API.email,
        aws_identity_store_id=aws.store_id if aws is not None else None,
        aws_endpoint_url=aws.endpoint_url if aws is not None else None,
    )


def _print_first_check() -> Callable[[Snapshot], None]:
    """What the first check found, as ``vault-drift check`` shows it; later ones go to logs."""
    printed = threading.Event()

    def show(snapshot: Snapshot) -> None:
        if not printed.is_set():
            printed.set()
            table = drift_table(drift_document(snapshot, utc_now()))
            print(f"first check:\n{table}", flush=True)

    return show


def banner(config: Config, d1_file: Path | None = None, aws: Any | None = None) -> str:
    """The URLs and the secrets to try the demo with, its simulated Cloudflare included."""
    url = config.effective_public_url()
    admin, read = (_secret(config.admin_token), _secret(config.read_token))
    cloudflare = config.cloudflare_base_url
    account, token = config.cloudflare_account_id, _secret(config.cloudflare_api_token)
    return "\n".join(
        [
            "vault-drift demo",
            f"  operator page   {url}/",
            f"  metrics         {url}/metrics",
            f"  API             {url}/iam/drift   (Authorization: Bearer <token>)",
            f"  OpenAPI         {url}/openapi.json",
            f"  admin token     {admin}",
            f"  read token      {read}",
            f"  Vault DB        {config.database}"
            + (f"   (simulated D1 REST API over {d1_file})" if d1_file else ""),
            f"  Cloudflare sim  {cloudflare}",
            f"    account id    {account}",
            f"    API token     {token}",
            f"    sessions      {sessions_url(cloudflare)}   (live Access sessions and"
            " revoke_user calls: a leaver's end)",
            *aws_audience.banner_lines(aws),
            "  try: curl -H 'Authorization: Bearer " + admin + f"' {url}/iam/drift",
            f"       curl -H 'Authorization: Bearer {token}' {cloudflare}/accounts/{account}"
            "/access/groups",
            "Ctrl-C to stop.",
        ]
    )


def sessions_url(cloudflare_base_url: str) -> str:
    """The simulator's sessions document (a control route, beside the API's root)."""
    return cloudflare_base_url.removesuffix("/client/v4") + "/_sim/sessions"


def _secret(value: SecretStr | None) -> str:
    assert value is not None  # the demo sets every token it prints
    return value.get_secret_value()
