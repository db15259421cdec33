"""moto's identity store on loopback, one store id per test (moto keeps one state per
process: a fresh store id is a fresh world)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporter.aws.identity_store import IdentityStoreClient
from exporter.aws.local import LocalIdentityStore, moto_available, new_store_id
from exporter.aws.provider import IdentityCenter
from tests.aws.aws_world import FakeTime, client_for
from tests.aws.faults import FaultProxy


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalIdentityStore]:
    if not moto_available():
        pytest.fail("moto[server] is not installed: pip install -e '.[test]'")
    with LocalIdentityStore() as server:
        yield server


@pytest.fixture
def store(moto_server: LocalIdentityStore) -> LocalIdentityStore:
    moto_server.store_id = new_store_id()
    return moto_server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def proxy(store: LocalIdentityStore) -> Iterator[FaultProxy]:
    with FaultProxy(store.endpoint_url) as running:
        yield running


@pytest.fixture
def client(
    store: LocalIdentityStore, proxy: FaultProxy, fake_time: FakeTime
) -> IdentityStoreClient:
    return client_for(store, proxy.url, fake_time)


@pytest.fixture
def provider(client: IdentityStoreClient, fake_time: FakeTime) -> IdentityCenter:
    return IdentityCenter(client, clock=fake_time.clock)
