"""The web app built from real collaborators: sample Vault file, simulator, engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from web_helpers import services_for

from exporter.clock import FixedClock
from exporter.service.checker import Engine
from exporter.service.syncer import Syncer
from exporter.web import create_app


@pytest.fixture
def client(engine: Engine, syncer: Syncer, clock: FixedClock) -> Iterator[TestClient]:
    engine.check_all()
    with TestClient(create_app(services_for(engine, syncer, clock), page=False)) as test_client:
        yield test_client
