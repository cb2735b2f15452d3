"""Prometheus, Grafana and compose cannot run here (no Docker engine): their files are parsed,
and every dashboard query is checked against the metric families that really exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from allscreen.defaults import REPO_ROOT
from readout.metrics import FAMILIES

DEPLOY = REPO_ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "allscreen-fleet.json"
#: Sample names a family of each type exposes, as suffixes of the family name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
METRIC_NAME = re.compile(r"\b(?:allscreen|flower)_[a-z0-9_]+")
#: Panels the issue asks for, by a word of their title.
REQUIRED_PANELS = ("fleet throughput", "per device", "p50", "p95", "queue", "failure", "online")


def _flower_families() -> dict[str, str]:
    from flower.events import get_prometheus_metrics

    metrics = get_prometheus_metrics()
    return {
        m._name: str(m._type) for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)
    }


def known_samples() -> set[str]:
    """Every sample name Flower or `allscreen metrics` can expose."""
    families = {**FAMILIES, **_flower_families()}
    return {name + suffix for name, kind in families.items() for suffix in SUFFIXES[kind]}


def _panels() -> list[dict[str, Any]]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [p for p in data["panels"] if p["type"] != "row"]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return data


def test_every_dashboard_query_names_a_metric_family_that_exists() -> None:
    known = known_samples()
    for panel in _panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = METRIC_NAME.findall(target["expr"])
            assert names, f"{panel['title']}: no allscreen or Flower metric in {target['expr']}"
            unknown = set(names) - known
            assert not unknown, f"{panel['title']}: no such metric {sorted(unknown)}"


def test_the_dashboard_has_the_panels_an_operator_needs() -> None:
    titles = " | ".join(p["title"].lower() for p in _panels())
    for word in REQUIRED_PANELS:
        assert word in titles, word
    assert all(p.get("description") for p in _panels())
    ids = [p["id"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_reads_the_provisioned_prometheus() -> None:
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    uids = {s["uid"] for s in sources}
    for panel in _panels():
        assert panel["datasource"]["uid"] in uids
        assert all(t["datasource"]["uid"] in uids for t in panel["targets"])


def test_prometheus_scrapes_flower_and_the_allscreen_exporter_where_compose_runs_them() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    services = _compose()["services"]
    assert set(targets) == {"flower", "allscreen"}
    for target in targets.values():
        host, port = target.split(":")
        command = services[host]["command"]
        assert command[:2] == ["allscreen", host if host == "flower" else "metrics"]
        assert command[command.index("--port") + 1] == port


def test_compose_mounts_the_monitoring_files_that_exist() -> None:
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name}: {source}"
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "allscreen.yml").read_text()
    )["providers"][0]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert Path(REPO_ROOT / mounted[provider["options"]["path"]]) == DASHBOARD.parent


def test_monitoring_ports_are_published_on_loopback_only() -> None:
    services = _compose()["services"]
    for name in ("flower", "metrics", "prometheus", "grafana"):
        for port in services[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
    assert services["flower"]["command"][:2] == ["allscreen", "flower"]


def test_the_monitoring_page_names_every_metric_family_and_the_monitoring_urls() -> None:
    readme = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    for family, kind in FAMILIES.items():
        assert (family + "_total" if kind == "counter" else family) in readme, family
    for url in ("http://127.0.0.1:5555", "http://127.0.0.1:3000", "http://127.0.0.1:9808/metrics"):
        assert url in readme
