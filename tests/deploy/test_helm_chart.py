"""The Helm chart, rendered by the real ``helm`` and every manifest checked against the Kubernetes schemas.

``helm`` comes from PATH or .venv/bin (scripts/install-helm puts it there); without one these tests
skip and say why. ``kubernetes_validate`` checks each document strictly (unknown fields fail)
against :data:`K8S_VERSION`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ase_serving.cluster.k8s import find_helm
from ase_serving.deploy import CHART_DIR
from tests.support import asectl

kubernetes_validate = pytest.importorskip("kubernetes_validate")

K8S_VERSION = "1.33.0"
VALUES = Path(__file__).parent / "values"
VALUES_FILES = sorted(p.name for p in VALUES.glob("*.yaml"))

HELM = find_helm()
needs_helm = pytest.mark.skipif(
    HELM is None, reason="helm not found on PATH or in .venv/bin: run scripts/install-helm"
)
if HELM is None:
    print("tests/deploy: helm not found on PATH or in .venv/bin: run scripts/install-helm", file=sys.stderr)

Doc = dict[str, Any]


def render(values: str | None = None, *extra: str) -> list[Doc]:
    assert HELM is not None
    argv = [HELM, "template", "ase", str(CHART_DIR), "--namespace", "ase-test"]
    if values:
        argv += ["--values", str(VALUES / values)]
    proc = subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def kinds(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, component: str) -> Doc:
    found = [
        d
        for d in kinds(docs, kind)
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"{kind} of {component}: {len(found)}"
    return found[0]


def container(deploy: Doc) -> Doc:
    containers: list[Doc] = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(c: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


@needs_helm
def test_helm_lint() -> None:
    assert HELM is not None
    for values in [None, *VALUES_FILES]:
        argv = [HELM, "lint", "--strict", str(CHART_DIR)]
        if values:
            argv += ["--values", str(VALUES / values)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{values}: {proc.stdout}{proc.stderr}"


@needs_helm
@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_manifest_validates(values: str) -> None:
    docs = render(values)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{values}: {doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )


@needs_helm
@pytest.mark.parametrize("values", VALUES_FILES)
def test_pods_run_as_non_root(values: str) -> None:
    docs = render(values)
    workloads = kinds(docs, "Deployment") + kinds(docs, "StatefulSet")
    assert workloads
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            # One loader of ingress-hpa-loaders.yaml turns it off (its own securityContext on top).
            assert sc["readOnlyRootFilesystem"] is (c["image"] != "registry.example.com/asr-loader:0.1.0")
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "resources" in c or w["metadata"]["labels"]["app.kubernetes.io/component"].startswith(
                "loader"
            )


@needs_helm
def test_default_etcd_mode() -> None:
    docs = render("default.yaml")
    etcd = one(docs, "StatefulSet", "etcd")
    assert etcd["spec"]["replicas"] == 1
    assert container(etcd)["image"].startswith("quay.io/coreos/etcd:")
    claim = etcd["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"

    gw = one(docs, "Deployment", "gateway")
    c = container(gw)
    assert c["image"] == "ase-serving:0.1.0"  # the chart's appVersion
    assert c["command"] == ["python", "-m", "ase_serving.gateway"]
    assert "--host=0.0.0.0" in c["args"] and "--port=2392" in c["args"]
    assert "--lb=ase-ase-serving-lb:2393" in c["args"]  # the LB's lean-wire port
    env = env_of(c)
    assert env["ASE_CONFIG_ADDRESS"] == "etcd://ase-ase-serving-etcd:2379"
    assert env["ASE_PROJECT"] == "default" and env["ASE_GROUP"] == "default"
    assert "ASE_CONFIG_PASSWORD" not in env
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 2392, "protocol": "TCP"}]

    svc = one(docs, "Service", "gateway")
    assert svc["spec"]["selector"] == gw["spec"]["selector"]["matchLabels"]

    pdb = one(docs, "PodDisruptionBudget", "gateway")
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = gw["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"

    lb = one(docs, "Deployment", "lb")
    assert container(lb)["command"] == ["python", "-m", "ase_serving.lb"]
    assert "--port=2391" in container(lb)["args"] and "--wire-port=2393" in container(lb)["args"]
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in one(docs, "Service", "lb")["spec"]["ports"]}
    assert ports == {"grpc": (2391, "grpc"), "wire": (2393, "wire")}
    assert not kinds(docs, "Ingress") and not kinds(docs, "HorizontalPodAutoscaler")
    assert not kinds(docs, "ConfigMap") and not kinds(docs, "Secret")
    assert gw["spec"]["replicas"] == 2


@needs_helm
def test_external_etcd_with_credentials() -> None:
    docs = render("external-etcd.yaml")
    assert not kinds(docs, "StatefulSet")
    (secret,) = kinds(docs, "Secret")
    assert secret["stringData"] == {"account": "ase", "password": "s3cret"}
    for component in ("gateway", "lb"):
        env = env_of(container(one(docs, "Deployment", component)))
        assert env["ASE_CONFIG_ADDRESS"] == "etcd://etcd-0.etcd.infra:2379,etcd-1.etcd.infra:2379"
        assert env["ASE_PROJECT"] == "shop" and env["ASE_GROUP"] == "prod"
        ref = env["ASE_CONFIG_PASSWORD"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": "password"}


@needs_helm
def test_external_needs_an_address() -> None:
    assert HELM is not None
    proc = subprocess.run(
        [HELM, "template", "ase", str(CHART_DIR), "--set", "configCentre.mode=external"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "configCentre.external.address is required" in proc.stderr


@needs_helm
def test_configmap_mode() -> None:
    docs = render("configmap.yaml")
    assert not kinds(docs, "StatefulSet")
    (cm,) = kinds(docs, "ConfigMap")
    assert cm["data"] == {"echo--1.0.0--schema": '{"serviceId": "echo", "version": "1.0.0"}'}
    assert not [
        d for d in kinds(docs, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/component"] == "lb"
    ]
    gw = one(docs, "Deployment", "gateway")
    c = container(gw)
    assert env_of(c)["ASE_CONFIG_ADDRESS"] == "configmap:///etc/ase/config?project=default&group=default"
    assert not any(a.startswith("--lb=") for a in c["args"])
    volumes = {v["name"]: v for v in gw["spec"]["template"]["spec"]["volumes"]}
    assert volumes["schemas"]["configMap"]["name"] == cm["metadata"]["name"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["schemas"] == {"name": "schemas", "mountPath": "/etc/ase/config", "readOnly": True}


@needs_helm
def test_ingress_hpa_and_loaders() -> None:
    docs = render("ingress-hpa-loaders.yaml")
    (ing,) = kinds(docs, "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"secretName": "ase-tls", "hosts": ["ase.example.com"]}]
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "ase.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == one(docs, "Service", "gateway")["metadata"]["name"]

    gw = one(docs, "Deployment", "gateway")
    assert "replicas" not in gw["spec"]  # the HPA owns it
    assert container(gw)["image"] == "registry.example.com/ase-serving:0.1.0-test"
    assert "--public-host=ase.example.com" in container(gw)["args"]  # signatures over another host: refused
    hpas = {
        h["metadata"]["labels"]["app.kubernetes.io/component"]: h
        for h in kinds(docs, "HorizontalPodAutoscaler")
    }
    assert set(hpas) == {"gateway", "loader-asr"}
    assert hpas["gateway"]["spec"]["scaleTargetRef"]["name"] == gw["metadata"]["name"]
    assert (hpas["gateway"]["spec"]["minReplicas"], hpas["gateway"]["spec"]["maxReplicas"]) == (2, 6)
    assert one(docs, "PodDisruptionBudget", "gateway")["spec"]["minAvailable"] == 2

    echo = one(docs, "Deployment", "loader-echo")
    assert echo["spec"]["replicas"] == 3
    c = container(echo)
    assert c["image"] == "registry.example.com/echo-loader:1.0.0"
    assert c["command"] == ["asectl", "loader", "run"]
    assert c["args"][:5] == [
        "/app",
        "--host=0.0.0.0",
        "--port=50051",
        "--data-port=50052",
        "--metrics-port=9090",
    ]
    assert not any(a.startswith("--data-host") for a in c["args"])  # 0.0.0.0: the secret from etcd
    assert "--service=echo" in c["args"] and "--version=1.0.0" in c["args"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "256Mi"}
    env = env_of(c)
    # The host only: the loader registers POD_IP:50052 (its data port), gRPC POD_IP:50051 in attrs.
    assert env["ASE_LOADER_ADVERTISE"] == "$(POD_IP)" and env["ECHO_PREFIX"] == "hi "
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert [(p["name"], p["containerPort"]) for p in c["ports"]] == [
        ("grpc", 50051),
        ("data", 50052),
        ("metrics", 9090),
    ]
    svc = one(docs, "Service", "loader-echo")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == echo["spec"]["selector"]["matchLabels"]
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["data"]["port"] == 50052 and ports["data"]["targetPort"] == "data"
    assert ports["grpc"]["port"] == 50051 and ports["metrics"]["port"] == 9090

    asr = one(docs, "Deployment", "loader-asr")
    assert "replicas" not in asr["spec"]
    ca = container(asr)
    assert "--workers=2" in ca["args"] and "--lic=4" in ca["args"]
    # Its gRPC port is 50052, so its data port defaults to the next one.
    assert "--port=50052" in ca["args"] and "--data-port=50053" in ca["args"]
    assert {p["name"]: p["containerPort"] for p in ca["ports"]}["data"] == 50053
    asr_svc = {p["name"]: p["port"] for p in one(docs, "Service", "loader-asr")["spec"]["ports"]}
    assert asr_svc == {"grpc": 50052, "data": 50053, "metrics": 9091}
    assert ca["securityContext"]["readOnlyRootFilesystem"] is False
    assert ca["securityContext"]["capabilities"]["drop"] == ["ALL"]  # the rest of the chart's stays
    assert ca["readinessProbe"]["httpGet"]["port"] == "metrics"
    assert hpas["loader-asr"]["spec"]["scaleTargetRef"]["name"] == asr["metadata"]["name"]
    assert hpas["loader-asr"]["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    # Selectors of the two loaders do not overlap.
    assert echo["spec"]["selector"] != asr["spec"]["selector"]


_ONE_LOADER = ("--set", "loaders[0].name=echo", "--set", "loaders[0].image.repository=r/echo")


@needs_helm
def test_loader_data_port() -> None:
    """A loader's dataPort (default 50052 next to gRPC 50051) is a flag, a container port and a
    port of its headless Service; one that clashes with another port of the loader fails."""
    docs = render(None, *_ONE_LOADER, "--set", "loaders[0].dataPort=6000")
    c = container(one(docs, "Deployment", "loader-echo"))
    assert "--port=50051" in c["args"] and "--data-port=6000" in c["args"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "grpc": 50051,
        "data": 6000,
        "metrics": 9090,
    }
    svc = {p["name"]: p["port"] for p in one(docs, "Service", "loader-echo")["spec"]["ports"]}
    assert svc == {"grpc": 50051, "data": 6000, "metrics": 9090}
    assert env_of(c)["ASE_LOADER_ADVERTISE"] == "$(POD_IP)"

    default = container(one(render(None, *_ONE_LOADER), "Deployment", "loader-echo"))
    assert "--data-port=50052" in default["args"]

    assert HELM is not None
    for clash in ("loaders[0].dataPort=50051", "loaders[0].dataPort=9090"):
        argv = [HELM, "template", "ase", str(CHART_DIR), *_ONE_LOADER, "--set", clash]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode != 0, clash
        assert "dataPort" in proc.stderr and "must differ" in proc.stderr, proc.stderr


@needs_helm
def test_configmap_mode_keeps_loader_data_ports_on_loopback() -> None:
    """No key-value store, so no cluster secret: a loader's data port stays on 127.0.0.1 (it starts
    and serves gRPC; with no registry it is not registered anyway)."""
    docs = render("configmap.yaml", *_ONE_LOADER)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    c = container(one(docs, "Deployment", "loader-echo"))
    assert "--data-port=50052" in c["args"] and "--data-host=127.0.0.1" in c["args"]
    assert c["livenessProbe"]["tcpSocket"] == {"port": "grpc"}  # not the data port: loopback only
    etcd_docs = render(None, *_ONE_LOADER)
    assert not any(
        a.startswith("--data-host") for a in container(one(etcd_docs, "Deployment", "loader-echo"))["args"]
    )


def test_cli_without_helm(tmp_path: Path) -> None:
    """No helm anywhere: exit 1, say how to install it and the exact helm command to run."""
    env = {"PATH": "/nonexistent", "ASE_HELM": ""}
    proc = asectl("init", "--mode", "k8s", "--values", VALUES / "configmap.yaml", env=env, home=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "helm is not installed" in proc.stderr and "scripts/install-helm" in proc.stderr
    assert f"helm upgrade --install ase {CHART_DIR} --namespace ase --create-namespace" in proc.stderr
    assert f"--values {VALUES / 'configmap.yaml'}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_missing_values_file(tmp_path: Path) -> None:
    proc = asectl(
        "init", "--mode", "k8s", "--values", tmp_path / "nope.yaml", env={"ASE_HELM": ""}, home=tmp_path
    )
    assert proc.returncode == 2
    assert "nope.yaml: no such file" in proc.stderr


@needs_helm
def test_cli_dry_run_prints_manifests(tmp_path: Path) -> None:
    assert HELM is not None
    env = {"ASE_HELM": HELM}
    proc = asectl(
        "init", "--mode", "k8s", "--dry-run", "--values", VALUES / "configmap.yaml", env=env, home=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert {d["kind"] for d in docs} >= {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    assert all(d["metadata"].get("namespace", "ase") == "ase" for d in docs)


@needs_helm
def test_cli_no_cluster_reachable(tmp_path: Path) -> None:
    """helm present but no Kubernetes: helm's error, said clearly, exit 1, nothing hangs."""
    assert HELM is not None
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
        "users: [{name: u, user: {}}]\n"
    )
    env = {"ASE_HELM": HELM, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
    proc = asectl("init", "--mode", "k8s", env=env, timeout=90, home=tmp_path)
    assert proc.returncode == 1
    assert "no Kubernetes cluster reachable" in proc.stderr
    assert "helm upgrade --install ase" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert os.environ.get("KUBECONFIG") != str(kubeconfig)
