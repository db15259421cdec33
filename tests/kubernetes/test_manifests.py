"""deploy/kubernetes/: rendered by the real `kubectl kustomize` (kubectl ships with the machine
image; Debian's kubernetes-client is too old for this kustomize syntax), the core objects checked
against Kubernetes' own schemas (kubernetes-validate, strict), the Prometheus Operator's objects
against its CRD schemas (the models generated from the v0.80.1 CRDs, a pinned test extra), and
what docs/design.md's high availability needs of them checked one by one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring
from pydantic import BaseModel
from support import require_tool

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
LAYERS = {"base": KUSTOMIZE / "base", "example": KUSTOMIZE / "overlays" / "example"}
# The oldest Kubernetes the manifests target (unhealthyPodEvictionPolicy is GA in 1.31) and
# the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]
OPERATOR_MODELS: dict[str, type[BaseModel]] = {
    "PodMonitor": monitoring.PodMonitor,
    "PrometheusRule": monitoring.PrometheusRule,
}
POD_LABELS = {"app.kubernetes.io/name": "vault-drift", "app.kubernetes.io/component": "exporter"}
SECRET = "vault-drift-tokens"


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [require_tool("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=sorted(LAYERS))
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(LAYERS[request.param])


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return found


def test_renders_exactly_these_objects(objects: list[dict[str, Any]]) -> None:
    assert sorted(o["kind"] for o in objects) == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PodMonitor",
        "PrometheusRule",
        "Service",
        "ServiceAccount",
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_pass_kubernetes_schemas(objects: list[dict[str, Any]], version: str) -> None:
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        kubernetes_validate.validate(obj, version, strict=True)


def test_kubernetes_validation_is_strict() -> None:
    """The check is not vacuous: a misspelt field of the Deployment is refused."""
    deployment = one(render(LAYERS["base"]), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def operator_errors(obj: dict[str, Any]) -> list[str]:
    """What the Prometheus Operator's CRD schema refuses in ``obj``: wrong types and values,
    missing fields, and fields the schema does not have (which validation would silently
    drop, so they show up as a difference after a round trip)."""
    model = OPERATOR_MODELS[obj["kind"]]
    try:
        parsed = model.model_validate(obj)
    except ValueError as exc:
        return [str(exc)]
    back = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [] if back == obj else [f"fields outside the schema: {obj} != {back}"]


def test_operator_objects_pass_the_crd_schemas(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            assert operator_errors(obj) == [], obj["kind"]


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (lambda o: o["spec"]["podMetricsEndpoints"][0].update(scheme="gopher"), "PodMonitor"),
        (lambda o: o["spec"]["podMetricsEndpoints"][0].update(honourLabels=True), "PodMonitor"),
        (lambda o: o["spec"].pop("selector"), "PodMonitor"),
        (lambda o: o["spec"]["groups"][0].update(rule=[]), "PrometheusRule"),
        (lambda o: o["spec"]["groups"][2]["rules"][3].update({"for": "15 min"}), "PrometheusRule"),
        (lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr"), "PrometheusRule"),
    ],
    ids=[
        "bad scheme",
        "misspelt field",
        "no selector",
        "unknown group field",
        "a duration Prometheus cannot read",
        "a rule without expr",
    ],
)
def test_operator_schema_check_is_not_vacuous(change: Any, kind: str) -> None:
    obj = one(render(LAYERS["base"]), kind)
    change(obj)
    assert operator_errors(obj)


def test_prometheus_rule_is_alerts_yml() -> None:
    rule = one(render(LAYERS["base"]), "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load((ROOT / "alerts.yml").read_text())["groups"]
    script = subprocess.run(
        [sys.executable, "scripts/prometheusrule.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0, script.stdout + script.stderr


def test_two_replicas_of_serve_standby_on_d1(objects: list[dict[str, Any]]) -> None:
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    main = container(objects)
    assert main["args"] == ["serve", "--standby"]
    config = one(objects, "ConfigMap")["data"]
    assert config["VAULT_DRIFT_DATABASE"].startswith("d1://")
    assert config["VAULT_DRIFT_STANDBY"] == "1"
    assert [e["configMapRef"]["name"] for e in main["envFrom"]] == [
        one(objects, "ConfigMap")["metadata"]["name"]
    ]
    # A standby is never ready: a rolling update must not wait for one (see deployment.yaml).
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == "100%"


def test_probes(objects: list[dict[str, Any]]) -> None:
    main = container(objects)
    port = main["ports"][0]
    assert (port["name"], port["containerPort"]) == ("http", 9847)
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # The Service follows a takeover within one probe period.
    assert main["readinessProbe"]["periodSeconds"] <= 5


def test_security_context(objects: list[dict[str, Any]]) -> None:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(objects)["securityContext"]
    assert context == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_resources_from_the_benchmarks(objects: list[dict[str, Any]]) -> None:
    """docs/benchmarks.md: a D1 full check at 1,000 x 1,000 peaks at 125 MB (goal < 200 MB)."""
    resources = container(objects)["resources"]
    assert resources == {
        "requests": {"cpu": "100m", "memory": "192Mi"},
        "limits": {"cpu": "1", "memory": "384Mi"},
    }
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "peaks at 125.0 MB" in benchmarks


def test_tokens_come_from_a_secret_the_manifests_do_not_contain(
    objects: list[dict[str, Any]],
) -> None:
    assert not [o for o in objects if o["kind"] == "Secret"]
    env = {e["name"]: e for e in container(objects)["env"]}
    assert set(env) == {
        "CLOUDFLARE_API_TOKEN",
        "VAULT_DRIFT_D1_API_TOKEN",
        "VAULT_DRIFT_ADMIN_TOKEN",
        "VAULT_DRIFT_READ_TOKEN",
    }
    for name, item in env.items():
        ref = item["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (SECRET, name)
        assert ref.get("optional", False) is (name != "CLOUDFLARE_API_TOKEN")
    assert not {k for k in one(objects, "ConfigMap")["data"] if "TOKEN" in k or "PASSWORD" in k}


def test_every_selector_picks_the_pods(objects: list[dict[str, Any]]) -> None:
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == POD_LABELS
    selectors = {
        "Deployment": one(objects, "Deployment")["spec"]["selector"]["matchLabels"],
        "Service": one(objects, "Service")["spec"]["selector"],
        "PodMonitor": one(objects, "PodMonitor")["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget": one(objects, "PodDisruptionBudget")["spec"]["selector"][
            "matchLabels"
        ],
        "NetworkPolicy": one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    }
    assert selectors == dict.fromkeys(selectors, POD_LABELS)


def test_service_sends_the_page_and_api_to_the_ready_pod(objects: list[dict[str, Any]]) -> None:
    service = one(objects, "Service")["spec"]
    assert not service.get("publishNotReadyAddresses", False)
    assert service["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}
    ]


def test_metrics_from_every_replica_as_job_vault_drift(objects: list[dict[str, Any]]) -> None:
    """A PodMonitor scrapes each pod, ready or not; its job is the pod label's value, which is
    the job alerts.yml names; honorLabels keeps the audience's `namespace` label."""
    spec = one(objects, "PodMonitor")["spec"]
    assert POD_LABELS[spec["jobLabel"]] == "vault-drift"
    assert 'job="vault-drift"' in (ROOT / "alerts.yml").read_text()
    [endpoint] = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["honorLabels"]) == (
        "http",
        "/metrics",
        True,
    )


def test_disruption_budget_lets_the_leader_go(objects: list[dict[str, Any]]) -> None:
    """Only the leader is ready: a budget that kept one ready pod would block its eviction."""
    spec = one(objects, "PodDisruptionBudget")["spec"]
    assert spec["minAvailable"] == 0
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_network_policy(objects: list[dict[str, Any]]) -> None:
    spec = one(objects, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = spec["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    egress_ports = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (587, "TCP")}


def test_example_overlay() -> None:
    objects = render(LAYERS["example"])
    assert {o["metadata"].get("namespace") for o in objects} == {"vault-drift"}
    assert container(objects)["image"] == "registry.example.com/platform/vault-drift:0.1.0"
    config = one(objects, "ConfigMap")["data"]
    assert config["VAULT_DRIFT_DATABASE"] != "d1://00000000-0000-0000-0000-000000000000"
    for kind in ("PodMonitor", "PrometheusRule"):
        assert one(objects, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert one(objects, "NetworkPolicy")["spec"]["ingress"][0]["from"]
