"""deploy/k8s renders with the real `kubectl kustomize`, every core object passes
kubernetes-validate for a current Kubernetes, and the manifests agree with the settings,
the routes, the policy and deploy/prometheus/."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streams.contract.settings import ENVIRONMENT, load_settings
from tests.support.deploy import web_routes, worker_routes

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES = "1.34.0"
CRDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing (`kubectl kustomize` renders deploy/k8s)"
    done = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy/k8s")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    # a generated ConfigMap's name ends with its content's hash: keyed without it
    return {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "ConfigMap"
             else d["metadata"]["name"]): d for d in docs}


def container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def env_of(obj: dict[str, Any], objects: dict) -> dict[str, str]:
    """The container's environment: its config map's literals, then its own values."""
    c = container(obj)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(objects[("ConfigMap", source["configMapRef"]["name"].rsplit("-", 1)[0])]["data"])
    for item in c["env"]:
        env[item["name"]] = item["value"] if "value" in item else "<from " + next(iter(item["valueFrom"])) + ">"
    return env


def test_every_core_object_is_valid_for_a_current_kubernetes(objects: dict) -> None:
    assert {kind for kind, _ in objects} >= {"StatefulSet", "Deployment", "Service", "PodDisruptionBudget",
                                              "ConfigMap", "ServiceMonitor", "PrometheusRule"}
    for (kind, _), obj in objects.items():
        if kind in CRDS:
            continue
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_the_workers_settings_probes_and_volumes(objects: dict) -> None:
    sts = objects[("StatefulSet", "warden-worker")]
    c = container(sts)
    env = env_of(sts, objects)
    assert set(env) <= set(ENVIRONMENT), set(env) - set(ENVIRONMENT)
    settings = load_settings({k: v for k, v in env.items() if not v.startswith("<from")})
    item = {i["name"]: i for i in c["env"]}
    assert item["WARDEN_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # static membership
    assert item["WARDEN_AUTH_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "warden-auth", "key": "secret"}
    assert c["ports"][0]["containerPort"] == settings.web_port and settings.store == "rocksdb"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["data"] == settings.data_dir
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert settings.policy_path.startswith(mounts["policy"] + "/")
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == c["startupProbe"]["httpGet"]["path"] == "/livez"
    assert {"/readyz", "/livez"} <= worker_routes()
    start = c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 300  # a long restore is not a failure
    policy = objects[("ConfigMap", "warden-policy")]["data"]["policy.yaml"]
    assert policy == (ROOT / "rules/policy.yaml").read_text(), "deploy/k8s/policy.yaml differs from rules/policy.yaml"


def test_the_web_service_and_the_disruption_budgets(objects: dict) -> None:
    deployment = objects[("Deployment", "warden-web")]
    c = container(deployment)
    env = env_of(deployment, objects)
    assert set(env) <= set(ENVIRONMENT)
    settings = load_settings({k: v for k, v in env.items() if not v.startswith("<from")})
    assert c["ports"][0]["containerPort"] == settings.ui_port and settings.ui_host == "0.0.0.0"
    assert settings.ui_secure_cookie
    assert {c["readinessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["path"]} <= web_routes()
    assert objects[("PodDisruptionBudget", "warden-worker")]["spec"]["maxUnavailable"] == 1
    assert objects[("PodDisruptionBudget", "warden-web")]["spec"]["minAvailable"] == 1


def test_the_operators_scrape_and_rules_are_those_of_deploy_prometheus(objects: dict) -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/warden.rules.yml").read_text())
    assert objects[("PrometheusRule", "warden")]["spec"]["groups"] == rules["groups"]
    monitor = objects[("ServiceMonitor", "warden")]["spec"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    services = [objects[("Service", n)] for n in ("warden-worker", "warden-web")]
    assert {s["metadata"]["labels"][monitor["jobLabel"]] for s in services} == jobs
    for service in services:
        labels = service["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in monitor["selector"]["matchLabels"].items())
        assert monitor["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["endpoints"][0]["path"] == "/metrics"
