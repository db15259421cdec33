"""The README's two commands: ``make demo`` installs what the demo runs on, ``make test`` the rest.

Checked with ``make -n`` (what make would run) against a throwaway venv path: nothing is
installed, and the stamps make sees are the ones each target leaves behind.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def planned(target: str, venv: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), target, f"VENV={venv}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_make_demo_on_a_fresh_clone_installs_only_the_runtime_dependencies(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    commands = planned("demo", venv)
    assert f"python3 -m venv {venv}" in commands
    assert f"{venv}/bin/python -m pip install -q -e .\n" in commands
    assert "[test]" not in commands  # no Playwright, schemathesis, mypy... for a demo
    assert commands.rstrip().endswith(f"{venv}/bin/vault-drift demo")


def test_make_test_adds_the_test_extras_on_top_of_a_demo_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed-runtime").touch()  # what `make demo` leaves
    commands = planned("test", venv)
    assert "-m venv" not in commands
    assert f"{venv}/bin/python -m pip install -q -e '.[test]'" in commands
    (venv / ".installed").touch()  # what `make test` leaves
    assert "pip install" not in planned("test", venv)
    assert "pip install" not in planned("demo", venv)


def test_make_test_installs_workerds_d1_from_the_lockfile(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed-runtime").touch()
    (venv / ".installed").touch()
    stamp = ROOT / "tests" / "d1" / "gateway" / "node_modules" / ".installed"
    commands = planned("test", venv)
    if (
        stamp.exists()
        and stamp.stat().st_mtime >= (stamp.parent.parent / "package-lock.json").stat().st_mtime
    ):
        assert "npm ci" not in commands
    else:
        assert "npm ci --no-audit" in commands
    assert "install-system-tools" in commands
