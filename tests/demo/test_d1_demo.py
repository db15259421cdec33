"""``vault-drift demo --d1``: the sample Vault served by the simulated D1 REST API."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from support import T0, free_port

from exporter.demo.life import DemoLife
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator


def test_the_d1_demo_runs_everything_on_the_simulated_d1(monkeypatch: pytest.MonkeyPatch) -> None:
    exe = Path(sys.executable).parent / "vault-drift"
    port = free_port()
    monkeypatch.setenv("VAULT_DRIFT_LISTEN", f"127.0.0.1:{port}")
    demo = subprocess.Popen(
        [exe, "demo", "--d1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    out = demo.stdout
    assert out is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True).start()
    seen: list[str] = []
    try:
        while not (seen and seen[-1].startswith("6 audiences:")):
            try:
                seen.append(lines.get(timeout=60))
            except queue.Empty:
                raise AssertionError("no first check printed:\n" + "".join(seen)) from None
        text = "".join(seen)
        assert "Vault DB        d1://00000000-0000-4000-8000-0000000000d1" in text
        assert "6 audiences: 2 in sync, 2 drift, 1 error, 1 pending" in text
        admin = next(line.split()[-1] for line in seen if line.strip().startswith("admin token"))
        url = f"http://127.0.0.1:{port}"
        # vault-api's change notification, as the demo's own life sends it.
        answer = requests.post(
            f"{url}/iam/drift/check",
            json={"audiences": ["developers"]},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        )
        assert answer.status_code == 200
        assert [i["status"] for i in answer.json()["items"]] == ["synced"]
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert 'api="d1"' in metrics and "vault_drift_d1_rows_read_total" in metrics
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
        out.close()


def test_the_demo_life_notifies_like_vault_api_after_a_member_change(tmp_path: Path) -> None:
    sent: list[list[str]] = []
    with CloudflareSimulator() as simulator:
        build_sample(tmp_path / "vault.db", simulator, T0)
        life = DemoLife(tmp_path / "vault.db", simulator, 60, notify=sent.append)
        for step in life.steps:  # only Vault's changes notify; Cloudflare's edits do not
            step()
    assert sent == [["developers"], ["developers"]]
