"""`allscreen metrics` figures: per-device counters and histograms derived from SQL, on both
SQLite and PostgreSQL, plus queue depth from a real Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert

from allscreen.db import make_engine
from allscreen.results import ResultRow, upsert_results
from allscreen.schema import STATUS_DONE, STATUS_FAILED, Image
from producer.register import get_or_create_run
from readout.metrics import FAMILIES, FleetCollector, make_registry

#: (device, status, inference ms, seconds from queued to finished, finished how long ago)
ROWS = [
    ("nano-a", STATUS_DONE, 1.0, 0.3, timedelta(seconds=5)),
    ("nano-a", STATUS_DONE, 3.0, 2.0, timedelta(seconds=10)),
    ("nano-a", STATUS_DONE, 8.0, 40.0, timedelta(minutes=10)),
    ("nano-b", STATUS_DONE, 20.0, 0.05, timedelta(seconds=1)),
    ("nano-b", STATUS_FAILED, None, 1.0, timedelta(seconds=1)),
]


def _seed(engine: Engine, *, pending: int) -> None:
    now = datetime.now(UTC)  # results are "recent" relative to the test, not to collection
    run_id, _ = get_or_create_run(engine, "seeded", pin=None)
    with engine.begin() as conn:
        ids = [
            conn.execute(
                insert(Image)
                .values(
                    run_id=run_id,
                    sha256=f"{i:064x}",
                    path=f"img-{i}.jpg",
                    location=b"/nowhere",
                    size_bytes=1,
                    deliveries=0,
                )
                .returning(Image.id)
            ).scalar_one()
            for i in range(len(ROWS) + pending)
        ]
    rows = []
    for image_id, (device, status, ms, waited, ago) in zip(ids, ROWS, strict=False):
        finished = now - ago
        rows.append(
            ResultRow(
                run_id,
                image_id,
                status,
                device,
                finished,
                queued_at=finished - timedelta(seconds=waited),
                inference_ms=ms,
                error=None if status == STATUS_DONE else "broken file",
            )
        )
    upsert_results(engine, rows)


def _scrape(collector: FleetCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(make_registry(collector)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return scraped[(name, tuple(sorted(labels.items())))]


def test_per_device_counters_and_latency_histograms_come_from_the_results_table(
    engine: Engine, broker_url: str
) -> None:
    _seed(engine, pending=2)
    client = redis.Redis.from_url(broker_url)
    queue = f"fleet-{uuid.uuid4().hex[:8]}"
    client.rpush(queue, b"batch-1", b"batch-2", b"batch-3")
    client.hset("unacked", "tag", b"batch-0")
    scraped = _scrape(FleetCollector(engine, client, queue, window=60))

    assert _value(scraped, "allscreen_images_total", device="nano-a", status="done") == 3
    assert _value(scraped, "allscreen_images_total", device="nano-b", status="failed") == 1
    assert _value(scraped, "allscreen_inference_seconds_count", device="nano-a") == 3
    assert abs(_value(scraped, "allscreen_inference_seconds_sum", device="nano-a") - 0.012) < 1e-9
    assert _value(scraped, "allscreen_inference_seconds_bucket", device="nano-a", le="0.002") == 1
    assert _value(scraped, "allscreen_inference_seconds_bucket", device="nano-a", le="0.005") == 2
    assert _value(scraped, "allscreen_inference_seconds_bucket", device="nano-b", le="0.01") == 0
    assert _value(scraped, "allscreen_inference_seconds_bucket", device="nano-b", le="+Inf") == 1
    # Queue to result: 0.3 s, 2 s and 40 s on nano-a (SQL date arithmetic, either dialect).
    assert (
        _value(scraped, "allscreen_queue_to_result_seconds_bucket", device="nano-a", le="0.5") == 1
    )
    assert (
        _value(scraped, "allscreen_queue_to_result_seconds_bucket", device="nano-a", le="2.5") == 2
    )
    assert (
        _value(scraped, "allscreen_queue_to_result_seconds_bucket", device="nano-a", le="30.0") == 2
    )
    waited = _value(scraped, "allscreen_queue_to_result_seconds_sum", device="nano-a")
    assert abs(waited - 42.3) < 0.01
    # Two of nano-a's results and both of nano-b's finished within the last minute.
    assert abs(_value(scraped, "allscreen_images_per_second", device="nano-a") - 2 / 60) < 1e-9
    assert abs(_value(scraped, "allscreen_images_per_second", device="nano-b") - 2 / 60) < 1e-9
    assert _value(scraped, "allscreen_pending_images", run="seeded") == 2
    assert _value(scraped, "allscreen_queue_batches", queue=queue) == 3
    assert _value(scraped, "allscreen_unacked_batches") == 1
    assert _value(scraped, "allscreen_source_up", source="database") == 1
    assert _value(scraped, "allscreen_source_up", source="broker") == 1


def test_the_exporter_serves_exactly_the_documented_families(
    engine: Engine, broker_url: str
) -> None:
    _seed(engine, pending=1)
    collector = FleetCollector(engine, redis.Redis.from_url(broker_url), "q")
    text = generate_latest(make_registry(collector)).decode()
    served = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert served == FAMILIES


def test_an_unreachable_database_or_broker_is_reported_not_raised(broker_url: str) -> None:
    dead_db = make_engine("postgresql://nobody@127.0.0.1:1/none")
    dead_redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    scraped = _scrape(FleetCollector(dead_db, dead_redis, "q"))
    assert _value(scraped, "allscreen_source_up", source="database") == 0
    assert _value(scraped, "allscreen_source_up", source="broker") == 0
    assert not any(name == "allscreen_images_total" for name, _ in scraped)


def test_figures_are_reused_within_the_cache_period(engine: Engine, broker_url: str) -> None:
    now = [100.0]
    collector = FleetCollector(
        engine, redis.Redis.from_url(broker_url), "q", cache_seconds=5, clock=lambda: now[0]
    )
    first = _scrape(collector)
    _seed(engine, pending=0)
    assert _scrape(collector) == first
    now[0] += 5
    assert _value(_scrape(collector), "allscreen_images_total", device="nano-a", status="done") == 3
