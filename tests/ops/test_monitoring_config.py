"""Monitoring and deployment as code, checked by the real tools (no Docker needed).

`promtool` (Debian's `prometheus` package, installed by scripts/test) validates the
Prometheus config, the rules and their unit tests, and parses every dashboard query;
`nats-server -t` validates the cluster config. The compose file, Grafana provisioning and
Alertmanager config are cross-checked against each other and against the code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sandbox.embedded import nats_server_binary
from services.bot.app.config import WEBHOOK_PATH
from tests.ops.promql import (
    DASHBOARDS,
    DEPLOY,
    ROOT,
    RULES,
    alert_names,
    all_queries,
    promtool,
    rules,
    without_grafana_variables,
)

PROMETHEUS = DEPLOY / "prometheus"
SERVICE_PORTS = {"bot": 8081, "trainer": 8082, "status": 8083}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_promtool_is_installed() -> None:
    result = promtool("--version")
    assert result.returncode == 0
    assert "promtool, version" in result.stdout + result.stderr


def test_prometheus_config_is_valid_and_scrapes_every_service() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr
    config = load(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service, port in SERVICE_PORTS.items():
        (sd,) = jobs[service]["dns_sd_configs"]
        assert sd == {**sd, "names": [service], "type": "A", "port": port}


def test_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_and_has_a_runbook() -> None:
    tested = {
        case["alertname"]
        for test in load(PROMETHEUS / "rules.test.yml")["tests"]
        for case in test.get("alert_rule_test", [])
    }
    runbook = (ROOT / "docs" / "operations.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^#+ (Aisha\w+)\s*$", runbook, re.M)}
    names = alert_names()
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert name in tested, f"{name} has no case in rules.test.yml"
        assert rule["labels"]["severity"] in {"page", "warning"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        assert name.lower() in anchors, f"docs/operations.md has no runbook section {name}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, wrapped as a recording rule (Grafana's variables
    replaced), so a typo in a panel fails here and not on a dashboard at 3 a.m."""
    queries = [(w, e) for w, e in all_queries() if not w.startswith("rules.yml")]
    assert len(queries) > 40
    group = {
        "name": "dashboard",
        "rules": [
            {"record": f"dashboard:query{i}", "expr": without_grafana_variables(expr)}
            for i, (_, expr) in enumerate(queries)
        ],
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [group]}))
    result = promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = json.loads(path.read_text())
    datasource = load(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    uid = datasource["datasources"][0]["uid"]
    assert board["uid"]
    assert board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["title"] not in titles, f"two panels titled {panel['title']!r}"
        titles.add(panel["title"])
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    for topic in ("funnel", "success rate", "end to end", "lag", "fal", "429", "dead letters"):
        assert any(topic in t.lower() for t in titles), f"no panel about {topic}"


def test_grafana_provisioning_matches_compose() -> None:
    compose = load(DEPLOY / "compose.yaml")["services"]["grafana"]
    provider = load(DEPLOY / "grafana/provisioning/dashboards/aisha.yml")["providers"][0]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in compose["volumes"]}
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource = load(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_wires_every_file_service_and_secret() -> None:
    compose = load(DEPLOY / "compose.yaml")
    services = compose["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
        if service.get("deploy", {}).get("replicas", 1) > 1:
            assert not service.get("ports"), f"{name} has replicas and a fixed host port"
    for service, port in SERVICE_PORTS.items():
        env = services[service]["environment"]
        assert env["NATS_STREAM_REPLICAS"] == "3"
        assert env["NATS_URL"].count("nats://") == 3
        assert str(port) in services[service]["healthcheck"]["test"][-1]
    assert services["bot"]["environment"]["TELEGRAM_MODE"] == "webhook"
    example = (DEPLOY / "env.example").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()))
    assert required <= set(re.findall(r"^(\w+)=", example, re.M))
    assert "PUBLIC_BASE_URL=https://" in example


def test_compose_gives_each_service_its_own_database_login() -> None:
    """Each service: its own login in DATABASE_URL, no password in any environment, only its
    own password file; the owner login is the migrate job's alone (docs/operations.md)."""
    compose = load(DEPLOY / "compose.yaml")
    services = compose["services"]
    text = (DEPLOY / "compose.yaml").read_text() + (DEPLOY / "env.example").read_text()
    assert "POSTGRES_PASSWORD=" not in text
    assert "POSTGRES_PASSWORD:" not in text
    for name, service in services.items():
        for value in (service.get("environment") or {}).values():
            assert urlsplit(str(value)).password is None, name
    for service in SERVICE_PORTS:
        env = services[service]["environment"]
        assert env["DATABASE_URL"] == f"postgresql://aisha_{service}_login@postgres:5432/aisha"
        assert env["DATABASE_PASSWORD_FILE"] == "/run/secrets/db_password"
        assert services[service]["secrets"] == [
            {"source": f"{service}_db_password", "target": "db_password"}
        ]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "services.kit.migrate"]
    assert migrate["environment"]["DATABASE_URL"] == "postgresql://aisha@postgres:5432/aisha"
    sources = {s if isinstance(s, str) else s["source"] for s in migrate["secrets"]}
    assert sources == set(compose["secrets"])
    for service in SERVICE_PORTS:
        path = migrate["environment"][f"{service.upper()}_DB_PASSWORD_FILE"]
        assert path == f"/run/secrets/{service}_db_password"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == (
        "/run/secrets/postgres_password"
    )
    assert (DEPLOY / "secrets" / ".gitignore").read_text().startswith("*\n")


def test_the_proxy_forwards_exactly_the_two_webhooks() -> None:
    caddyfile = (DEPLOY / "caddy" / "Caddyfile").read_text()
    handled = re.findall(r"^\s*handle (/\S+) \{", caddyfile, re.M)
    assert sorted(handled) == sorted([WEBHOOK_PATH, "/fal/webhook"])
    assert "{$PUBLIC_BASE_URL}" in caddyfile
    assert "respond 404" in caddyfile


def test_alertmanager_routes_to_a_receiver_and_inhibits_real_alerts() -> None:
    config = load(DEPLOY / "alertmanager" / "alertmanager.yml")
    receivers = {r["name"] for r in config["receivers"]}
    assert config["route"]["receiver"] in receivers
    for route in config["route"]["routes"]:
        assert route.get("receiver", config["route"]["receiver"]) in receivers
    names = set(alert_names())
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            for alert in re.findall(r"Aisha\w+", matcher):
                assert alert in names, f"alertmanager refers to unknown alert {alert}"


def test_nats_cluster_config_is_valid() -> None:
    for node in ("nats-1", "nats-2", "nats-3"):
        result = subprocess.run(
            [nats_server_binary(), "-c", str(DEPLOY / "nats" / "nats.conf"), "-t"],
            env={**os.environ, "NATS_NAME": node},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    conf = (DEPLOY / "nats" / "nats.conf").read_text()
    assert conf.count("nats-route://") == 3


def test_rules_file_is_the_one_prometheus_loads() -> None:
    assert RULES.parent == PROMETHEUS
    compose = load(DEPLOY / "compose.yaml")["services"]["prometheus"]
    assert "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in compose["volumes"]
