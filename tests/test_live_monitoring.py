"""Watching a live run: Flower and `allscreen metrics` against real workers on two devices."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.support.browser import dump_dom, pixel_spread, screenshot
from tests.support.cli import allscreen
from tests.support.monitors import Service, free_port, http_get, service
from tests.support.workers import workers

T = TypeVar("T")
AUTH = "ops:live-test-password"  #: Flower's basic auth in these tests
SAFE_ARGS = re.compile(r"^\(run=\d+ images=\d+ ids=\d+\.\.\d+\)$")  #: the producer's argsrepr
JPEG_BASE64 = "/9j/"  #: how every base64-encoded JPEG starts


def eventually(check: Callable[[], T | None], what: str, seconds: float = 45.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in a Prometheus text exposition."""
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def per_device(
    text: str, name: str, devices: tuple[str, ...], **labels: str
) -> dict[str, float] | None:
    """`name`'s value per device (matching `labels`), if every device has a non-zero one."""
    found: dict[str, float] = {}
    for sample, got, value in samples(text):
        if sample == name and all(got.get(k) == v for k, v in labels.items()):
            device = got.get("device") or got.get("worker", "").split("@")[0]
            found[device] = found.get(device, 0.0) + value
    return found if all(found.get(d, 0) > 0 for d in devices) else None


def _flower_tasks(flower: Service) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(
        http_get(f"{flower.base_url}/api/tasks", auth=AUTH)
    )
    return data


def test_a_live_run_on_two_devices_shows_per_device_series_in_flower_and_metrics(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    devices = ("dev-a", "dev-b")
    fp, mp = free_port(), free_port()
    with (
        service(
            settings,
            tmp_path,
            "flower",
            "--db",
            str(tmp_path / "flower.db"),
            port=fp,
            ready_path="/healthcheck",
            env={"FLOWER_BASIC_AUTH": AUTH},
        ) as flower,
        service(settings, tmp_path, "metrics", port=mp, ready_path="/metrics") as exporter,
        workers(settings, tmp_path, *devices),
    ):
        # Flower's event receiver is live once it has seen both workers' heartbeats.
        eventually(
            lambda: per_device(
                http_get(f"{flower.base_url}/metrics"), "flower_worker_online", devices
            ),
            "Flower to see both workers online",
        )
        submit([archive], settings, run_name="live", labels="folder", err=io.StringIO())
        watch("live", settings, err=io.StringIO())

        # allscreen metrics: results per device, from SQL, while the workers are running.
        text = eventually(
            lambda: (
                t
                if per_device(
                    t := http_get(f"{exporter.base_url}/metrics"),
                    "allscreen_images_total",
                    devices,
                    status="done",
                )
                else None
            ),
            "allscreen_images_total for both devices",
        )
        for name in (
            "allscreen_inference_seconds_count",
            "allscreen_queue_to_result_seconds_count",
        ):
            assert per_device(text, name, devices), name
        assert ("allscreen_queue_batches", {"queue": settings.queue}, 0.0) in samples(text)
        assert ("allscreen_source_up", {"source": "database"}, 1.0) in samples(text)
        assert ("allscreen_source_up", {"source": "broker"}, 1.0) in samples(text)

        # Flower: task events from both workers, as Prometheus metrics and through its API.
        eventually(
            lambda: per_device(
                http_get(f"{flower.base_url}/metrics"),
                "flower_events_total",
                devices,
                type="task-succeeded",
            ),
            "Flower's task-succeeded events from both workers",
        )
        tasks = _flower_tasks(flower)
        assert tasks and all(SAFE_ARGS.match(str(t["args"])) for t in tasks.values()), [
            t["args"] for t in tasks.values()
        ]
        assert all(t["kwargs"] == "{}" for t in tasks.values())
        uuid = next(iter(tasks))
        page = http_get(f"{flower.base_url}/task/{uuid}", auth=AUTH)
        assert str(tasks[uuid]["args"]) in page

        # A batch refused and handed back (its run is pinned to a model no device holds) is
        # delivered again; Flower still shows only the safe description.
        pinned = submit(
            [archive / "Benign"], settings, run_name="pinned", pin="f" * 64, err=io.StringIO()
        )
        refused = eventually(
            lambda: [
                t
                for t in _flower_tasks(flower).values()
                if f"run={pinned.run_id} " in str(t["args"]) and t["state"] != "RECEIVED"
            ],
            "Flower to see the pinned run's batch handled",
        )
        assert all(SAFE_ARGS.match(str(t["args"])) for t in refused)
        everything = http_get(f"{flower.base_url}/api/tasks", auth=AUTH)
        assert JPEG_BASE64 not in everything and str(archive) not in everything

        # Flower's workers page, in a real browser, lists both devices.
        url = f"http://{AUTH}@127.0.0.1:{fp}/workers"
        dom = dump_dom(url)
        for device in devices:
            assert f"{device}@" in dom
        png = screenshot(url, tmp_path / "flower-workers.png", size=(1280, 800))
        assert pixel_spread(png) > 10

    # The run's report, on this database too (SQLite hands timestamps back naive, PostgreSQL
    # aware): both devices appear in the latency and throughput figures.
    html = tmp_path / "live.html"
    done = allscreen("report", "live", "--html", str(html), settings=settings)
    assert done.returncode == 0, done.stderr
    page = html.read_text(encoding="utf-8")
    for figure in ("confusion-matrix", "latency-per-device", "throughput-over-time"):
        assert f'<figure id="{figure}"><svg' in page
    for device in devices:
        assert f"<td>{device}</td>" in page
