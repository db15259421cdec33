"""The web app built from real collaborators: sample Vault file, simulator, checker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from support import FixedClock
from support.web import services_for

from exporter.service import Services
from exporter.service.checker import Checker
from exporter.web import create_app


@pytest.fixture
def client(services: Services, checker: Checker, clock: FixedClock) -> Iterator[TestClient]:
    checker.check_all()
    with TestClient(create_app(services_for(services, clock), page=False)) as test_client:
        yield test_client
