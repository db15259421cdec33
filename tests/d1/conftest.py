"""Fixtures of the D1 tests: the session's workerd, and the world on each backend.

``backend`` is parametrised over the file, the simulated D1 and workerd's D1, so a scenario
written once runs on each (see ``support/d1_world.py``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.d1_world import BACKENDS, Workerd, World, make_world, start_workerd


@pytest.fixture(scope="session")
def workerd() -> Iterator[Workerd]:
    with tempfile.TemporaryDirectory(prefix="vault-drift-workerd-") as persist:
        gateway = start_workerd(Path(persist))
        try:
            yield gateway
        finally:
            gateway.process.terminate()
            gateway.process.wait(timeout=30)
            if gateway.process.stdout is not None:
                gateway.process.stdout.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    yield from make_world(request, tmp_path, request.param)


@pytest.fixture(params=["sim", "workerd"])
def d1_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The two D1 backends only: what a file has no counterpart for (REST faults)."""
    yield from make_world(request, tmp_path, request.param)


@pytest.fixture
def d1_sim_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The simulated D1 alone: what is counted on its server (requests a check makes)."""
    yield from make_world(request, tmp_path, "sim")
