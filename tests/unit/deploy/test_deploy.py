"""The compose deployment and the container image agree with the settings, the routes, the
topic plan and deploy/ (no Docker engine runs here: the files are parsed and cross-checked)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import yaml

from streams.admin import planned_topics
from streams.contract.settings import ENVIRONMENT, load_settings
from tests.support.deploy import web_routes, worker_routes

ROOT = Path(__file__).resolve().parents[3]
WARDEN_SERVICES = ("topic-init", "worker-1", "worker-2", "web")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_of(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in service["environment"].items()}


def health_url(service: dict) -> str:
    return next(re.search(r"http://[^'\"]+", part).group(0) for part in service["healthcheck"]["test"]
                if "http://" in part)


def test_kafka_runs_in_kraft_with_three_brokers_that_know_each_other() -> None:
    services = compose()["services"]
    brokers = [name for name in services if name.startswith("kafka-")]
    assert brokers == ["kafka-1", "kafka-2", "kafka-3"]
    voters = {f"{services[b]['environment']['KAFKA_NODE_ID']}@{b}:9093" for b in brokers}
    for name in brokers:
        env = services[name]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2" and env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # the topic-init job makes them


def test_every_warden_service_has_valid_consistent_settings() -> None:
    services = compose()["services"]
    for name in WARDEN_SERVICES:
        env = env_of(services[name])
        assert set(env) <= set(ENVIRONMENT), (name, set(env) - set(ENVIRONMENT))
        assert env["WARDEN_AUTH_SECRET"].startswith("${WARDEN_AUTH_SECRET:?"), name  # required, from outside
        settings = load_settings(env)
        hosts = {server.split(":")[0] for server in settings.kafka_bootstrap_servers.split(",")}
        assert hosts == {"kafka-1", "kafka-2", "kafka-3"}, name
        assert urlparse(settings.redis_url).hostname == "redis"
        registry = urlparse(settings.schema_registry_url or "")
        listener = services["schema-registry"]["environment"]["SCHEMA_REGISTRY_LISTENERS"]
        assert registry.hostname == "schema-registry" and listener.endswith(f":{registry.port}")
        assert (ROOT / settings.policy_path).exists()
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert str(settings.partitions) == services["kafka-1"]["environment"]["KAFKA_NUM_PARTITIONS"]


def test_workers_have_static_membership_volumes_and_readiness_healthchecks() -> None:
    doc = compose()
    services = doc["services"]
    ids = set()
    for name in ("worker-1", "worker-2"):
        service = services[name]
        settings = load_settings(env_of(service))
        assert service["command"] == ["warden", "worker"]
        ids.add(settings.instance_id)
        assert settings.store == "rocksdb"
        volume, mount = service["volumes"][0].split(":")
        assert mount == settings.data_dir and volume in doc["volumes"]
        url = urlparse(health_url(service))
        assert url.port == settings.web_port and url.path == "/readyz" and url.path in worker_routes()
        assert service["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert ids == {"worker-1", "worker-2"}


def test_the_web_service_and_the_topic_init_job() -> None:
    services = compose()["services"]
    web = services["web"]
    settings = load_settings(env_of(web))
    assert web["command"] == ["warden", "web"] and settings.ui_host == "0.0.0.0"
    assert f"{settings.ui_port}:{settings.ui_port}" in web["ports"]
    url = urlparse(health_url(web))
    assert url.port == settings.ui_port and url.path in web_routes()
    init = services["topic-init"]
    assert init["command"][:2] == ["warden", "topics"] and init["restart"] == "no"
    plan = planned_topics(load_settings(env_of(init)))
    assert plan["trust-safety.seller-metrics"]["cleanup.policy"] == "compact"
    assert all(config["cleanup.policy"] == "compact" for name, config in plan.items() if name.endswith("-changelog"))
    assert all("retention.ms" in config for name, config in plan.items() if name.startswith("marketplace."))


def test_prometheus_alertmanager_and_grafana_are_wired_to_warden() -> None:
    services = compose()["services"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]}
    workers = [f"{name}:{load_settings(env_of(services[name])).web_port}" for name in ("worker-1", "worker-2")]
    assert targets["warden"] == workers
    assert targets["warden-web"] == [f"web:{load_settings(env_of(services['web'])).ui_port}"]
    assert "/metrics" in web_routes() and "/metrics" in worker_routes()
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert all((ROOT / "deploy/prometheus" / f).exists() for f in scrape["rule_files"])
    alertmanager = scrape["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager == ["alertmanager:9093"] and "9093:9093" in services["alertmanager"]["ports"]
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/warden.yml").read_text())
    dashboards_mount = next(v.split(":")[1] for v in grafana if "dashboards" in v.split(":")[0])
    assert provider["providers"][0]["options"]["path"] == dashboards_mount
    source = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    assert "9090:9090" in services["prometheus"]["ports"]


def test_the_image_installs_every_package_and_serves_both_ports() -> None:
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in {p.split(".")[0] for p in packages}:  # `pip install .` needs every package
        assert f"COPY {package} {package}" in dockerfile, package
    assert "EXPOSE 6066 8080" in dockerfile
