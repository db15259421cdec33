"""The AWS side of the tests: a clock that sleeping advances, and clients of moto's store."""

from __future__ import annotations

from exporter.aws.identity_store import IdentityStoreClient
from exporter.aws.local import LocalIdentityStore, local_session


class FakeTime:
    """A monotonic clock that sleeping advances: pauses cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def client_for(store: LocalIdentityStore, endpoint: str, time: FakeTime) -> IdentityStoreClient:
    return IdentityStoreClient(
        identity_store_id=store.store_id,
        endpoint_url=endpoint,
        boto_session=local_session(),
        timeout=5.0,
        clock=time.clock,
        sleep=time.sleep,
    )
