"""``vault-drift demo --standby-pair``: two ``serve --standby`` processes on the demo's Vault,
so that a person can watch a failover: kill -9 the leader (or send it SIGTERM) and the other
takes over; the demo starts the stopped one again, as a standby, as Kubernetes would."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from exporter.config import Config

log = logging.getLogger("vault_drift.demo")

DEMO_LEASE = "10s"  # a kill -9 failover within the lease plus one 5 s read
RESTART_SECONDS = 2.0  # how often the demo looks for a stopped replica
# A stopped replica comes back only once the other has had its chance to take over: past the
# lease (D1) and one standby read (both). Sooner, the restarted one could win the lock or
# lease again (on a file the lock is free the instant the leader dies), and nobody would see
# the failover the demo is for.
COMEBACK_SECONDS = 10 + 5 + 1
PR_SET_PDEATHSIG = 1
_ENTRY = "import sys; from exporter.cli.main import main; sys.exit(main())"


def replica_env(config: Config, listen: str) -> dict[str, str]:
    """The environment of one replica: the demo's configuration, its own address."""
    secrets = {
        "CLOUDFLARE_API_TOKEN": config.cloudflare_api_token,
        "VAULT_DRIFT_ADMIN_TOKEN": config.admin_token,
        "VAULT_DRIFT_READ_TOKEN": config.read_token,
    }
    env = {
        **os.environ,
        "VAULT_DRIFT_DATABASE": config.database,
        "CLOUDFLARE_ACCOUNT_ID": str(config.cloudflare_account_id),
        "CLOUDFLARE_BASE_URL": config.cloudflare_base_url,
        "VAULT_DRIFT_LISTEN": listen,
        "VAULT_DRIFT_CHECK_INTERVAL": f"{config.check_interval}s",
        "VAULT_DRIFT_VAULT_API_ACTORS": ",".join(config.vault_api_actors),
        "VAULT_DRIFT_D1_LEASE": DEMO_LEASE,
        "VAULT_DRIFT_STANDBY": "1",
    }
    aws = {
        "VAULT_DRIFT_AWS_IDENTITY_STORE_ID": config.aws_identity_store_id,
        "VAULT_DRIFT_AWS_ENDPOINT_URL": config.aws_endpoint_url,
    }
    env.update({k: v for k, v in aws.items() if v is not None})
    env.pop("VAULT_DRIFT_PUBLIC_URL", None)
    env.update({k: v.get_secret_value() for k, v in secrets.items() if v is not None})
    return env


def second_listen(config: Config) -> str:
    host, port = config.listen_address
    return f"[{host}]:{port + 1}" if ":" in host else f"{host}:{port + 1}"


def _die_with_parent() -> None:
    """Linux: the replica gets SIGTERM when the demo dies, even by kill -9 (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class StandbyPair:
    """Two replicas, each started again when it stops, until ``stop``."""

    def __init__(self, config: Config, workdir: Path) -> None:
        self.listens = [config.listen, second_listen(config)]
        self.envs = [replica_env(config, listen) for listen in self.listens]
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes] | None] = [None, None]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="standby-pair", daemon=True)

    def start(self) -> None:
        for index in range(2):
            self._spawn(index)
        self._thread.start()

    def describe(self) -> str:
        lines = ["  standby pair    two `serve --standby` on this Vault; one leads:"]
        for listen, process in zip(self.listens, self.processes, strict=True):
            pid = process.pid if process is not None else "-"
            lines.append(f"    http://{listen}/readyz   pid {pid}")
        lines.append("  failover: kill -9 <pid of the ready one> (or kill <pid>); it comes back")
        return "\n".join(lines)

    def wait(self) -> None:
        """Until Ctrl-C or SIGTERM."""
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        try:
            while not self._stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        self._stop.set()
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self.processes:
            if process is not None:
                process.wait(timeout=60)

    def _spawn(self, index: int) -> None:
        process = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, "serve", "--standby"],
            env=self.envs[index],
            cwd=self.workdir,
            preexec_fn=_die_with_parent,
        )
        self.processes[index] = process
        log.info("replica %d started (pid %d)", index + 1, process.pid)

    def _watch(self) -> None:
        stopped_at: dict[int, float] = {}
        while not self._stop.wait(RESTART_SECONDS):
            for index, process in enumerate(self.processes):
                if process is None or process.poll() is None or self._stop.is_set():
                    continue
                since = stopped_at.setdefault(index, time.monotonic())
                if time.monotonic() - since >= COMEBACK_SECONDS:
                    del stopped_at[index]
                    print(
                        f"replica pid {process.pid} stopped ({process.returncode}): starting it"
                        " again as a standby",
                        flush=True,
                    )
                    self._spawn(index)
