"""`allscreen metrics`: a Prometheus exporter for the fleet, reading SQL and Redis.

Why read the results database rather than instrument the workers: Celery's prefork pool runs
each classification in a child process, so in-process counters would need
PROMETHEUS_MULTIPROC_DIR bookkeeping and a scrape target on every device (often behind NAT).
The results table already holds, per image, the device, the status, the inference time and
the queue and finish timestamps, written once per image by any worker. One exporter next to
the database therefore sees the whole fleet, survives worker restarts, and needs no port on
the devices. A scrape reads the write-time tallies (allscreen/tallies.py), not every result,
so its cost does not grow with the results table; it is also cached briefly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from allscreen.defaults import DEFAULT_RATE_WINDOW
from allscreen.errors import ConfigError
from readout.fleet_figures import (
    DeviceFigures,
    Histogram,
    QueueClient,
    device_figures,
    pending_by_run,
    queue_figures,
)

log = logging.getLogger(__name__)

#: Seconds a scrape's figures are reused: several Prometheus servers (or a refreshing browser)
#: then cost one grouped query, not one each.
DEFAULT_CACHE_SECONDS = 5.0

#: The metric families this exporter serves, as Prometheus sees them (for docs and tests).
FAMILIES = {
    "allscreen_images": "counter",
    "allscreen_inference_seconds": "histogram",
    "allscreen_queue_to_result_seconds": "histogram",
    "allscreen_images_per_second": "gauge",
    "allscreen_queue_batches": "gauge",
    "allscreen_unacked_batches": "gauge",
    "allscreen_pending_images": "gauge",
    "allscreen_source_up": "gauge",
    "allscreen_collect_seconds": "gauge",
}


def _histogram(family: HistogramMetricFamily, device: str, h: Histogram | None) -> None:
    if h is None:
        return
    buckets = [(repr(float(b)), float(c)) for b, c in zip(h.bounds, h.counts, strict=True)]
    buckets.append(("+Inf", float(h.count)))
    family.add_metric([device], buckets, sum_value=h.total)


class FleetCollector:
    """Collects the fleet's figures on each scrape (cached for `cache_seconds`)."""

    def __init__(
        self,
        engine: Engine,
        queue_client: QueueClient,
        queue: str,
        *,
        window: float = DEFAULT_RATE_WINDOW,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._redis = queue_client
        self._queue = queue
        self._window = window
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()  # the HTTP server scrapes from several threads
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterable[Metric]:
        """The current metrics; figures younger than `cache_seconds` are reused."""
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._cache_seconds:
                self._cached = (now, self._gather())
            return list(self._cached[1])

    def _gather(self) -> list[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily(
            "allscreen_source_up",
            "Whether the last read of a source succeeded (1) or failed (0)",
            labels=["source"],
        )
        metrics: list[Metric] = []
        try:
            since = datetime.now(UTC) - timedelta(seconds=self._window)
            figures = device_figures(self._engine, since=since)
            pending = pending_by_run(self._engine)
        except SQLAlchemyError as exc:
            log.warning("cannot read the results database: %s", str(exc).splitlines()[0])
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            metrics += self._device_metrics(figures)
            gauge = GaugeMetricFamily(
                "allscreen_pending_images",
                "Registered images of a run with no result yet",
                labels=["run"],
            )
            for run, n in sorted(pending.items()):
                gauge.add_metric([run], n)
            metrics.append(gauge)
        try:
            waiting, unacked = queue_figures(self._redis, self._queue)
        except Exception as exc:  # redis raises several unrelated types when it is down
            log.warning("cannot read the broker: %s", exc)
            up.add_metric(["broker"], 0)
        else:
            up.add_metric(["broker"], 1)
            depth = GaugeMetricFamily(
                "allscreen_queue_batches",
                "Batches waiting in the Redis queue (LLEN); each holds up to batch_size images",
                labels=["queue"],
            )
            depth.add_metric([self._queue], waiting)
            metrics.append(depth)
            metrics.append(
                GaugeMetricFamily(
                    "allscreen_unacked_batches",
                    "Batches delivered to workers and not yet acknowledged",
                    value=unacked,
                )
            )
        metrics.append(up)
        metrics.append(
            GaugeMetricFamily(
                "allscreen_collect_seconds",
                "Seconds the last collection of these figures took",
                value=time.perf_counter() - started,
            )
        )
        return metrics

    def _device_metrics(self, figures: list[DeviceFigures]) -> list[Metric]:
        images = CounterMetricFamily(
            "allscreen_images",
            "Images with a result, by the device that wrote it and its status",
            labels=["device", "status"],
        )
        rate = GaugeMetricFamily(
            "allscreen_images_per_second",
            f"Results per second over the last {self._window:g} s, by device",
            labels=["device"],
        )
        inference = HistogramMetricFamily(
            "allscreen_inference_seconds",
            "Model inference time per classified image, by device",
            labels=["device"],
        )
        waited = HistogramMetricFamily(
            "allscreen_queue_to_result_seconds",
            "Seconds from the image's batch being queued to the image's result, by device",
            labels=["device"],
        )
        for f in figures:
            images.add_metric([f.device, "done"], f.done)
            images.add_metric([f.device, "failed"], f.failed)
            rate.add_metric([f.device], f.recent / self._window)
            _histogram(inference, f.device, f.inference)
            _histogram(waited, f.device, f.queue_to_result)
        return [images, rate, inference, waited]


def make_registry(collector: FleetCollector) -> CollectorRegistry:
    """A registry holding only the fleet collector (no process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def serve_metrics(collector: FleetCollector, *, address: str, port: int) -> None:
    """Serve `/metrics` on `address:port` until interrupted."""
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=address, registry=make_registry(collector))
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}"
        ) from exc
    log.info("serving metrics on http://%s:%d/metrics", address, port)
    try:
        thread.join()
    finally:
        server.shutdown()
