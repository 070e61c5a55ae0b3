"""docker-compose.yml and deploy/k8s, checked offline (no container engine, no cluster on the build machines).

Compose: it starts from a fresh clone (every `${VAR}` has a default, no required .env), publishes the
service table's ports and the RabbitMQ and MinIO consoles, and every command is one the CLI accepts.
Kubernetes: every manifest validates against the Kubernetes 1.30 schemas (strict: unknown fields are
errors), every HTTP service of the registry has a probed Deployment and a Service, the workers a
StatefulSet deriving their partition index from the pod index.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from xypr.cli import cli
from xypr.layout import http_services
from xypr.services.registry import SERVICES, WORKER_SERVICES

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest version these manifests promise (pod-index label: 1.28+)


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _cli_accepts(argv: list[str]) -> None:
    """`argv` (after `xypr`) parses: the command and its options exist, the service name is known."""
    assert argv[0] == "xypr", argv
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, f"{argv}: {result.output}"
    if argv[1] == "serve":
        assert SERVICES[argv[2]].built, argv
        assert SERVICES[argv[2]].port is not None, argv
    if argv[1] == "worker":
        assert argv[2] == "all" or argv[2] in WORKER_SERVICES, argv


def test_compose_needs_no_env_file_every_variable_has_a_default() -> None:
    text = COMPOSE.read_text()
    references = re.findall(r"\$\{([^}]*)\}", text)
    assert references, "the file uses no variable at all?"
    for reference in references:
        assert re.fullmatch(r"[A-Z0-9_]+:-.+", reference), f"${{{reference}}} has no default"
    for service in _compose()["services"].values():
        for env_file in service.get("env_file", []):
            assert isinstance(env_file, dict), env_file
            assert env_file["required"] is False, env_file


def test_compose_default_master_key_is_a_valid_key_marked_for_development_only() -> None:
    from xypr.core.secretbox import SecretBox

    text = COMPOSE.read_text()
    default = re.search(r"\$\{XYPR_MASTER_KEY:-([^}]+)\}", text)
    assert default is not None
    SecretBox(default.group(1))  # opens: the stack starts with it
    assert "DEVELOPMENT ONLY" in text


def test_compose_publishes_the_service_table_and_the_consoles() -> None:
    services = _compose()["services"]
    published = {name: service.get("ports", []) for name, service in services.items()}
    assert "15672:15672" in published["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:3(\.\d+)*-management", services["rabbitmq"]["image"])
    assert "9001:9001" in published["minio"]
    assert "--console-address" in services["minio"]["command"]
    assert published["gateway"] == ["3000:3000"]
    for spec in http_services():
        assert spec.name in services, f"docker-compose.yml lacks {spec.name} (port {spec.port})"
        assert published[spec.name] == [f"{spec.port}:{spec.port}"], spec.name


def test_compose_commands_exist_in_the_cli_and_the_gateway_routes_to_the_containers() -> None:
    services = _compose()["services"]
    for service in services.values():
        command = service.get("command")
        if isinstance(command, list) and command[0] == "xypr":
            _cli_accepts(command)
    routed = json.loads(services["gateway"]["environment"]["XYPR_SERVICE_URLS"])
    for spec in http_services():
        if spec.paths:
            assert routed[spec.name] == f"http://{spec.name}:{spec.port}", spec.name
    workers = [s["command"] for n, s in services.items() if n.startswith("worker-")]
    assert sorted(command[4] for command in workers) == [str(i) for i in range(len(workers))]
    assert {command[6] for command in workers} == {str(len(workers))}


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path, document) for document in yaml.safe_load_all(path.read_text()) if document]
    return found


def test_every_manifest_validates_strictly_against_the_kubernetes_schemas() -> None:
    manifests = _manifests()
    assert len(manifests) > 10
    for path, document in manifests:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises on any error
        assert document["metadata"]["namespace" if document["kind"] != "Namespace" else "name"] == "xypr", path


def test_the_validator_does_reject_a_misspelt_field() -> None:
    deployment = next(doc for _, doc in _manifests() if doc["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/health"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml"}


def test_every_http_service_has_a_probed_deployment_and_a_service_on_its_port() -> None:
    manifests = [doc for _, doc in _manifests()]
    deployments = {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == "Deployment"}
    services = {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == "Service"}
    for spec in [*http_services(), SERVICES["api-gateway"]]:
        assert spec.name in deployments, f"deploy/k8s lacks a Deployment for {spec.name} (port {spec.port})"
        container = deployments[spec.name]["spec"]["template"]["spec"]["containers"][0]
        _cli_accepts(container["args"])
        assert container["args"][2] == spec.name
        assert container["ports"][0]["containerPort"] == spec.port
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        sources = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        assert sources == {"xypr-config", "xypr-secrets"}
        assert services[spec.name]["spec"]["ports"][0]["port"] == spec.port


def test_workers_are_a_statefulset_whose_pod_index_is_the_partition_index() -> None:
    manifests = [doc for _, doc in _manifests()]
    (workers,) = [doc for doc in manifests if doc["kind"] == "StatefulSet"]
    container = workers["spec"]["template"]["spec"]["containers"][0]
    _cli_accepts(container["args"])
    env = {item["name"]: item for item in container["env"]}
    assert env["XYPR_WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert env["XYPR_WORKER_COUNT"]["value"] == str(workers["spec"]["replicas"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_the_gateway_reads_the_service_urls_of_the_cluster_services() -> None:
    manifests = [doc for _, doc in _manifests()]
    (config,) = [doc for doc in manifests if doc["kind"] == "ConfigMap"]
    routed = json.loads(config["data"]["gateway-service-urls"])
    for spec in http_services():
        if spec.paths:
            assert routed[spec.name] == f"http://{spec.name}:{spec.port}", spec.name
    assert not any("PASSWORD" in key or "SECRET" in key or "MASTER" in key for key in config["data"])
