"""The compose file and deploy/ agree with the settings (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.settings import ENVIRONMENT, load_settings

ROOT = Path(__file__).resolve().parents[3]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_ports() -> None:
    services = compose()["services"]
    assert {"kafka", "redis", "warden", "prometheus"} <= set(services)
    assert "9092:9092" in services["kafka"]["ports"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert "6379:6379" in services["redis"]["ports"]


def test_worker_environment_is_valid_and_consistent() -> None:
    services = compose()["services"]
    env = {k: str(v) for k, v in services["warden"]["environment"].items()}
    assert set(env) <= set(ENVIRONMENT), set(env) - set(ENVIRONMENT)
    settings = load_settings(env)
    host, port = settings.kafka_bootstrap_servers.split(":")
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert host == "kafka" and f"PLAINTEXT://{host}:{port}" == advertised
    assert settings.redis_url.startswith("redis://redis:6379")
    assert f"{settings.web_port}:{settings.web_port}" in services["warden"]["ports"]
    assert (ROOT / settings.policy_path).exists()
    assert services["warden"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert str(settings.partitions) == services["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]


def test_dockerfile_and_scrape_config() -> None:
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in {p.split(".")[0] for p in packages}:  # `pip install .` needs every package
        assert f"COPY {package} {package}" in dockerfile, package
    scrape = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    port = compose()["services"]["warden"]["environment"]["WARDEN_WEB_PORT"]
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [f"warden:{port}"]


def test_the_web_service_shares_the_workers_broker_redis_and_secret() -> None:
    services = compose()["services"]
    worker = {k: str(v) for k, v in services["warden"]["environment"].items()}
    web = {k: str(v) for k, v in services["web"]["environment"].items()}
    assert set(web) <= set(ENVIRONMENT), set(web) - set(ENVIRONMENT)
    assert services["web"]["command"] == ["warden", "web"]
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "WARDEN_POLICY", "WARDEN_AUTH_SECRET"):
        assert web[name] == worker[name], name
    assert worker["WARDEN_AUTH_SECRET"].startswith("${WARDEN_AUTH_SECRET:?")  # from the environment, required
    settings = load_settings(web)
    assert settings.ui_host == "0.0.0.0" and f"{settings.ui_port}:{settings.ui_port}" in services["web"]["ports"]
