"""One daemon thread per process that exports metrics counted in the process (`ma_ray.gauge_histogram`,
`ma_ray.batched_counter`) to Ray every few seconds, and once more when the process exits cleanly."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Protocol, TypeVar

logger = logging.getLogger(__name__)

EXPORT_INTERVAL_S = 2.0  # exported this often; Ray's worker reports them every 10 s (`metrics_report_interval_ms`)


class Exported(Protocol):
    def export(self) -> None:
        """Hand what was counted since the last export to Ray."""


E = TypeVar("E", bound=Exported)


class PeriodicExport:
    """Exports its metrics every ``interval_s`` from one daemon thread, started with the first one."""

    def __init__(self, interval_s: float = EXPORT_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._metrics: weakref.WeakSet[Exported] = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def add(self, metric: E) -> E:
        with self._lock:
            self._metrics.add(metric)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ma-ray-metrics-export", daemon=True)
                self._thread.start()
                atexit.register(self.export)  # what came in the last interval, where the process exits cleanly
        return metric

    def export(self) -> None:
        for metric in list(self._metrics):
            try:
                metric.export()
            except Exception:  # one metric's failure must not end the thread that exports the others
                logger.exception("exporting a metric to Ray failed")

    def close(self) -> None:
        """Stop the thread after one last export (a process's own export runs until the process exits)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.export()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.export()


__all__ = ["EXPORT_INTERVAL_S", "Exported", "PeriodicExport"]
