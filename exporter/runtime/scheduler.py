"""Background checks on the ``schedule`` library (the only module that imports it).

One thread runs the jobs one after the other, so a check that overruns never stacks. Each
job goes through the cycle service, so every check is followed by auto-sync and the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import schedule

from exporter.service.cycle import CycleService
from exporter.service.snapshots import SnapshotStore
from exporter.service.work_lock import Busy

log = logging.getLogger("vault_drift.scheduler")

JITTER = 0.05


class CheckScheduler:
    def __init__(
        self,
        cycle: CycleService,
        snapshots: SnapshotStore,
        periodic: list[tuple[int, Callable[[], None]]] | None = None,
        tick_seconds: float = 1.0,
        full_interval: Callable[[], int] | None = None,
    ) -> None:
        self.cycle, self.snapshots = cycle, snapshots
        self._jobs = schedule.Scheduler()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vault-drift-scheduler", daemon=True)
        self._interval: int | None = None
        self._tick = tick_seconds
        self._periodic = periodic or []
        # Seconds between full listings; with the change feed, its safety-net interval while
        # the feed is healthy (service/feed.py), else the check interval.
        self._full_interval = full_interval or (
            lambda: self.snapshots.current.settings.check_interval_seconds
        )

    def start(self) -> None:
        self._schedule_checks()
        self._jobs.every(30).seconds.do(self._guard, self.retry_errors)
        self._jobs.every(5).seconds.do(self._guard, self._follow_interval)
        self._jobs.every(1).seconds.do(self._guard, self.resume_auto_sync)
        for seconds, job in self._periodic:
            self._jobs.every(seconds).seconds.do(self._guard, job)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_now(self) -> None:
        """The first check, straight away, in the scheduler's thread.

        No ``until`` deadline: ``schedule`` cancels a job found overdue *without running it*,
        and a tick that comes a little late would silently drop the first check. ``_once``
        cancels the job after its one run.
        """
        self._jobs.every().second.do(self._once, self.full_cycle)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._jobs.run_pending()
            self._stop.wait(self._tick)

    def _schedule_checks(self) -> None:
        interval = self._full_interval()
        self._jobs.clear("check")
        upper = max(interval + 1, int(interval * (1 + JITTER)))
        self._jobs.every(interval).to(upper).seconds.do(self._guard, self.full_cycle).tag("check")
        self._interval = interval

    def _follow_interval(self) -> None:
        if self._full_interval() != self._interval:
            log.info("full check interval changed: rescheduling")
            self._schedule_checks()

    def full_cycle(self) -> None:
        self.cycle.check_all("schedule", timeout=300)

    def resume_auto_sync(self) -> None:
        """Every tick: an auto-sync a long 429 pause cut short runs again as the pause ends."""
        self.cycle.resume_auto_sync()

    def retry_errors(self) -> None:
        """Audiences in error, checked again when their retry is due (the whole cycle)."""
        self.cycle.retry_errors(timeout=300)

    def _guard(self, job: Callable[[], None]) -> None:
        if self._stop.is_set():
            return
        try:
            job()
        except Busy:
            log.info("skipped a job: another check or sync is running")
        except Exception:
            log.exception("background job failed")

    def _once(self, job: Callable[[], None]) -> type[schedule.CancelJob]:
        self._guard(job)
        return schedule.CancelJob
