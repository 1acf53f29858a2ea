"""Platform metrics through one small facade: Ray's metrics inside Ray workers (they reach the Ray dashboard
and its Prometheus endpoint, exported with a ``ray_`` prefix; histograms as gauges of their series,
`ma_ray.gauge_histogram`, and counters summed in the process, `ma_ray.batched_counter`, both exported every
2 s), `prometheus-client` everywhere else.

Metric names are defined next to the code that records them; every name starts with ``ma_ray_``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ma_ray.batched_counter import BatchedCounter
from ma_ray.gauge_histogram import GaugeHistogram
from ma_ray.periodic_export import PeriodicExport


class BoundInstrument(Protocol):
    def record(self, value: float) -> None:
        """As ``Instrument.record`` with the tags it was bound to."""


class Instrument(Protocol):
    def record(self, value: float, tags: dict[str, str] | None = None) -> None:
        """Counters add ``value``, histograms observe it, gauges set it."""

    def bound(self, tags: dict[str, str]) -> BoundInstrument:
        """The instrument with ``tags`` fixed, made once per tag set: hot paths record without a label lookup."""


class ByLabel(dict[str, BoundInstrument]):
    """An instrument bound per value of one label, each made on first use: ``by_tier["l1"].record(n)`` costs one
    dict lookup, where ``bound({"tier": "l1"})`` builds and sorts a tag key per call."""

    def __init__(self, instrument: Instrument, label: str) -> None:
        super().__init__()
        self.instrument, self.label = instrument, label

    def __missing__(self, value: str) -> BoundInstrument:
        bound = self[value] = self.instrument.bound({self.label: value})
        return bound


class MetricsBackend(Protocol):
    def counter(self, name: str, description: str, tag_keys: Sequence[str] = ()) -> Instrument: ...

    def histogram(
        self, name: str, description: str, boundaries: Sequence[float], tag_keys: Sequence[str] = ()
    ) -> Instrument: ...

    def gauge(self, name: str, description: str, tag_keys: Sequence[str] = ()) -> Instrument: ...


class _BoundOnce:
    """Bound instruments, made once per tag set (label lookups and tag checks leave the hot path)."""

    def __init__(self) -> None:
        self._bound: dict[tuple[tuple[str, str], ...], BoundInstrument] = {}

    def bound(self, tags: dict[str, str]) -> BoundInstrument:
        key = tuple(sorted(tags.items()))
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = self._bind(tags)
        return bound

    def _bind(self, tags: dict[str, str]) -> BoundInstrument:
        raise NotImplementedError


class _RayBound:
    def __init__(self, record: Any, tags: dict[str, str]) -> None:
        self._record, self._tags = record, dict(tags)

    def record(self, value: float) -> None:
        self._record(value, tags=self._tags)


class _RayInstrument(_BoundOnce):
    def __init__(self, metric: Any, method: str) -> None:
        super().__init__()
        self._record = getattr(metric, method)

    def record(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._record(value, tags=tags)

    def _bind(self, tags: dict[str, str]) -> BoundInstrument:
        return _RayBound(self._record, tags)


def _ray_gauge(name: str, description: str, tag_keys: Sequence[str]) -> Any:
    from ray.util.metrics import Gauge

    return Gauge(name, description, tag_keys=tuple(tag_keys))


RAY_EXPORT = PeriodicExport()  # the histograms and counters counted in this process


class RayMetrics:
    """`ray.util.metrics`: what actors and Serve replicas use."""

    def counter(self, name: str, description: str, tag_keys: Sequence[str] = ()) -> Instrument:
        """Summed in the process and added to Ray's counter every 2 s: Ray's ``inc`` costs about 5 us a call
        (`ma_ray.batched_counter`)."""
        from ray.util.metrics import Counter

        counter = Counter(name, description, tag_keys=tuple(tag_keys))
        return RAY_EXPORT.add(BatchedCounter(name, tag_keys, lambda value, tags: counter.inc(value, tags=tags)))

    def histogram(
        self, name: str, description: str, boundaries: Sequence[float], tag_keys: Sequence[str] = ()
    ) -> Instrument:
        """Counted in the process, exported as gauges of its ``_bucket``, ``_sum`` and ``_count`` series: Ray's
        agent spends about 18 us on each observation of a Ray histogram (`ma_ray.gauge_histogram`)."""
        return RAY_EXPORT.add(GaugeHistogram(name, description, boundaries, tag_keys, _ray_gauge))

    def gauge(self, name: str, description: str, tag_keys: Sequence[str] = ()) -> Instrument:
        from ray.util.metrics import Gauge

        return _RayInstrument(Gauge(name, description, tag_keys=tuple(tag_keys)), "set")


class _PrometheusBound:
    def __init__(self, child: Any, method: str) -> None:
        self.record = getattr(child, method)


class _PrometheusInstrument(_BoundOnce):
    def __init__(self, metric: Any, method: str, labelled: bool) -> None:
        super().__init__()
        self._metric, self._method, self._labelled = metric, method, labelled

    def record(self, value: float, tags: dict[str, str] | None = None) -> None:
        target = self._metric.labels(**(tags or {})) if self._labelled else self._metric
        getattr(target, self._method)(value)

    def _bind(self, tags: dict[str, str]) -> BoundInstrument:
        return _PrometheusBound(self._metric.labels(**tags) if self._labelled else self._metric, self._method)


class PrometheusMetrics:
    """`prometheus-client` on a registry (the process-wide default unless one is given)."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY

        self.registry = registry if registry is not None else REGISTRY

    def counter(self, name: str, description: str, tag_keys: Sequence[str] = ()) -> Instrument:
        from prometheus_client import Counter

        metric = Counter(name, description, list(tag_keys), registry=self.registry)
        return _PrometheusInstrument(metric, "inc", bool(tag_keys))

    def histogram(
        self, name: str, description: str, boundaries: Sequence[float], tag_keys: Sequence[str] = ()
    ) -> Instrument:
        from prometheus_client import Histogram

        metric = Histogram(name, description, list(tag_keys), buckets=list(boundaries), registry=self.registry)
        return _PrometheusInstrument(metric, "observe", bool(tag_keys))

    def gauge(self, name: str, description: str, tag_keys: Sequence[str] = ()) -> Instrument:
        from prometheus_client import Gauge

        return _PrometheusInstrument(
            Gauge(name, description, list(tag_keys), registry=self.registry), "set", bool(tag_keys)
        )


def after_answer(record: Callable[..., None], *args: Any) -> None:
    """``record(*args)`` once the request being served has its answer written: on the event loop's next turn
    (a replica's dozen metric records took 0.1 ms of a 1.6 ms prediction's latency when made before it), or at
    once where no loop runs in this thread."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        record(*args)
        return
    loop.call_soon(record, *args)


def default_backend() -> MetricsBackend:
    """Ray's metrics inside a Ray worker process (actor, task, Serve replica), else prometheus-client."""
    try:
        import ray

        if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
            return RayMetrics()
    except ImportError:
        pass
    return PrometheusMetrics()
