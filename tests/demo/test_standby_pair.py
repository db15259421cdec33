"""``vault-drift demo --standby-pair``: two replicas a person can watch fail over."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from support import free_port, wait_for


def status(url: str) -> requests.Response | None:
    try:
        return requests.get(f"{url}/readyz", timeout=2)
    except requests.ConnectionError:
        return None


def start_pair(exe: Path, d1: bool, log: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    port = free_port()
    while free_port() == port + 1:  # the second replica listens on the next port
        pass
    env = {**os.environ, "VAULT_DRIFT_LISTEN": f"127.0.0.1:{port}"}
    with log.open("ab") as stderr:
        demo = subprocess.Popen(
            [exe, "demo", "--standby-pair", *(["--d1"] if d1 else [])],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return demo, [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]


def stop(demo: subprocess.Popen[bytes]) -> None:
    if demo.poll() is None:
        demo.kill()
        demo.wait(timeout=10)


@pytest.mark.parametrize("d1", [False, True], ids=["file", "d1"])
def test_kill_9_the_leader_of_the_pair_and_the_other_takes_over(d1: bool, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "vault-drift"
    log = tmp_path / "demo.log"
    answers: list[requests.Response | None] = []

    def one_leads() -> bool:
        answers[:] = [status(u) for u in urls]
        codes = sorted(a.status_code if a is not None else 0 for a in answers)
        return codes == [200, 503]

    # The next port is free when chosen, not reserved: a connection of the other pytest
    # worker may take it before the second replica binds. Then the pair starts again on
    # other ports; any other failure says what each replica answered and the demo's log.
    for _ in range(3):
        demo, urls = start_pair(exe, d1, log)
        try:
            wait_for(one_leads, 120, "one replica ready, the other a standby")
            break
        except AssertionError:
            stop(demo)
            if b"already in use" not in log.read_bytes().lower():
                codes = [a.status_code if a is not None else None for a in answers]
                tail = log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"no leader and standby: {codes}\n{tail}") from None
            log.write_bytes(b"")
    else:
        raise AssertionError("three pairs of ports were taken before the demo could bind them")
    try:
        [standby] = [a for a in answers if a is not None and a.status_code == 503]
        [standby_url] = [u for u, a in zip(urls, answers, strict=True) if a is standby]
        leader_url = urls[1 - urls.index(standby_url)]
        found = re.search(r"pid (\d+) ", standby.json()["detail"])
        assert found, standby.text
        os.kill(int(found.group(1)), signal.SIGKILL)
        wait_for(
            lambda: (a := status(standby_url)) is not None and a.status_code == 200, 60, "takeover"
        )
        # The killed one comes back, as a standby of the new leader.
        wait_for(
            lambda: (a := status(leader_url)) is not None and a.status_code == 503,
            60,
            "the killed replica back as a standby",
        )
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 0
        assert status(urls[0]) is None and status(urls[1]) is None
    finally:
        stop(demo)
