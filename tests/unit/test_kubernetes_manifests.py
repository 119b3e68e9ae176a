"""deploy/kubernetes/ is checked here because no cluster runs in CI: a manifest that names a flag `beacon`
does not have, probes a route the app does not serve, sets a variable nothing reads or leaves a pod
without `DATABASE_URL` (each would then start its own empty embedded Postgres) would otherwise only
show up on someone's `kubectl apply`."""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import yaml

from api.app import create_app
from infra.settings import Settings
from tests.support.deployment import ROOT, beacon_args, compose_file, dockerfile_instructions

DEPLOY = ROOT / "deploy" / "kubernetes"
MANIFEST_FILES = sorted(path.name for path in DEPLOY.glob("*.yaml") if path.name != "kustomization.yaml")


def _documents(name: str) -> list[dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d is not None]
    assert documents, f"{name} holds no manifest"
    for document in documents:
        assert {"apiVersion", "kind", "metadata"} <= document.keys(), name
    return documents


KUSTOMIZATION = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
MANIFESTS = [document for name in MANIFEST_FILES for document in _documents(name)]


def _component(manifest: dict[str, Any]) -> str:
    return str(manifest["metadata"]["labels"]["app.kubernetes.io/component"])


def _one(kind: str, component: str) -> dict[str, Any]:
    (found,) = [m for m in MANIFESTS if m["kind"] == kind and _component(m) == component]
    return found


API = _one("Deployment", "api")
WORKER = _one("Deployment", "worker")
MIGRATE = _one("Job", "migrate")
SECRET = _one("Secret", "database")
SERVICE = _one("Service", "api")
WORKLOADS = {"api": API, "worker": WORKER, "migrate": MIGRATE}


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = workload["spec"]["template"]
    return pod


def _containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for component, workload in WORKLOADS.items():
        pod = _pod(workload)["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield f"{component}/{container['name']}", container


def _args(container: dict[str, Any]) -> argparse.Namespace:
    assert "command" in container, "the image's default CMD is a serve with the worker; say what runs"
    return beacon_args(container["command"] + container.get("args", []))


def _settings_variables() -> set[str]:
    """The environment variables infra/settings.py reads: the string keys it looks up (`env.get("X", ...)`,
    `env["X"]`), taken from its source so a variable added there is known here without a second list."""
    tree = ast.parse((ROOT / "infra" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {"get", "getenv"}:
            key = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript):
            key = node.slice
        else:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


def test_kustomization_lists_every_manifest_and_nothing_else() -> None:
    assert KUSTOMIZATION["kind"] == "Kustomization"
    assert sorted(KUSTOMIZATION["resources"]) == MANIFEST_FILES
    assert len(set(KUSTOMIZATION["resources"])) == len(KUSTOMIZATION["resources"])


def test_topology_is_api_replicas_a_worker_pair_a_migration_job_a_secret_and_a_service() -> None:
    assert sorted(m["kind"] for m in MANIFESTS) == ["Deployment", "Deployment", "Job", "Secret", "Service"]
    assert not any("postgres" in m["metadata"]["name"] for m in MANIFESTS), "bring your own Postgres"
    names = [(m["kind"], m["metadata"]["name"]) for m in MANIFESTS]
    assert len(set(names)) == len(names)
    assert API["spec"]["replicas"] >= 2
    assert WORKER["spec"]["replicas"] == 2, "one active worker and one standby"
    for workload in (API, WORKER):
        selector = workload["spec"]["selector"]["matchLabels"]
        labels = _pod(workload)["metadata"]["labels"]
        assert selector.items() <= labels.items(), "the API server rejects a selector the template does not match"


def test_every_image_is_the_one_docker_compose_builds_from_the_dockerfile() -> None:
    compose_images = {
        service["image"] for service in compose_file()["services"].values() if service.get("build") == "."
    }
    (image,) = compose_images
    for name, container in _containers():
        assert container["image"] == image, name
        assert container.get("imagePullPolicy") == "IfNotPresent", f"{name}: a locally built image is not pulled"
    repository = image.rsplit(":", 1)[0]
    assert [entry["name"] for entry in KUSTOMIZATION["images"]] == [repository], "the override must match"


def test_commands_are_real_beacon_subcommands_and_flags() -> None:
    api, worker, migrate = (_args(_pod(w)["spec"]["containers"][0]) for w in (API, WORKER, MIGRATE))
    assert api.command == "serve"
    assert api.no_worker, "the API replicas leave projections and the scheduler to the worker Deployment"
    assert api.host == "0.0.0.0", "a pod must listen beyond its own loopback"
    assert worker.command == "worker"
    assert migrate.command == "migrate"
    for workload in WORKLOADS.values():
        assert len(_pod(workload)["spec"]["containers"]) == 1


def test_the_named_http_port_is_the_one_beacon_serve_listens_on_and_the_service_targets_it() -> None:
    (container,) = _pod(API)["spec"]["containers"]
    (port,) = container["ports"]
    assert port["name"] == "http", "a ServiceMonitor scrapes /metrics on the port named http"
    assert port["containerPort"] == _args(container).port
    (service_port,) = SERVICE["spec"]["ports"]
    assert service_port["name"] == "http"
    assert service_port["targetPort"] in {"http", port["containerPort"]}
    for name, container in _containers():
        if not name.startswith(("api/", "worker/")):
            assert "ports" not in container, f"{name} serves nothing"


def test_the_worker_serves_metrics_on_its_named_port_beyond_loopback() -> None:
    (container,) = _pod(WORKER)["spec"]["containers"]
    (port,) = container["ports"]
    assert port["name"] == "metrics", "a PodMonitor scrapes the port named metrics"
    assert port["containerPort"] == _args(container).metrics_port
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert env.get("BEACON_HOST") == "0.0.0.0", "the worker's metrics listener binds BEACON_HOST"


def test_the_service_selects_the_api_pods_only() -> None:
    selector = SERVICE["spec"]["selector"]
    assert selector.items() <= _pod(API)["metadata"]["labels"].items()
    for other in (WORKER, MIGRATE):
        assert not selector.items() <= _pod(other)["metadata"]["labels"].items(), "no traffic to a pod without HTTP"


def test_probes_use_the_app_routes_liveness_on_healthz_and_readiness_on_readyz() -> None:
    (container,) = _pod(API)["spec"]["containers"]
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    # Liveness must not depend on the database: during an outage it would restart every replica.
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    routes = {route.path: route.methods for route in create_app(Settings(), run_worker=False).routes}
    port_names = {port["name"] for port in container["ports"]}
    for kind, probe in probes.items():
        assert "GET" in routes.get(probe["path"], set()), f"{kind} probes {probe['path']}, which the app does not serve"
        assert probe["port"] in port_names, kind


def test_every_container_has_resource_requests_and_a_memory_limit() -> None:
    for name, container in _containers():
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys(), name
        assert "memory" in resources["limits"], name


def test_pods_run_as_the_images_unprivileged_user() -> None:
    """The Dockerfile's USER is a name; `runAsNonRoot` needs a numeric id to verify it, or the pod fails
    with "image has non-numeric user"."""
    (useradd,) = [args for op, args in dockerfile_instructions() if op == "RUN" and "useradd" in args]
    uid = re.search(r"--uid (\d+)", useradd)
    assert uid is not None, "the image's user needs a fixed uid for runAsUser to name"
    for component, workload in WORKLOADS.items():
        security = _pod(workload)["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True, component
        assert security["runAsUser"] == int(uid.group(1)), component
    for name, container in _containers():
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_environment_variables_are_ones_beacon_reads() -> None:
    known = _settings_variables()
    assert {"DATABASE_URL", "BEACON_POOL_SIZE"} <= known, "the parser of infra/settings.py lost track of it"
    for name, container in _containers():
        assert "envFrom" not in container, f"{name}: name each variable so it can be checked here"
        for variable in container.get("env", []):
            assert variable["name"] in known, f"{name} sets {variable['name']}, which infra/settings.py never reads"


def test_every_container_takes_database_url_from_the_secret() -> None:
    for name, container in _containers():
        (variable,) = [v for v in container["env"] if v["name"] == "DATABASE_URL"]
        reference = variable["valueFrom"]["secretKeyRef"]
        assert reference["name"] == SECRET["metadata"]["name"], name
        assert reference["key"] in SECRET["stringData"], name


def test_the_secret_holds_a_clearly_marked_placeholder_postgres_url() -> None:
    url = urlsplit(SECRET["stringData"]["DATABASE_URL"])
    assert url.scheme in {"postgresql", "postgres"}
    assert url.password == "CHANGE-ME"
    assert url.hostname is not None and url.hostname.endswith(".invalid"), "a placeholder must not resolve"
    assert "PLACEHOLDER" in (DEPLOY / "secret.yaml").read_text()


def _selects(selector: str, labels: dict[str, str]) -> bool:
    """A `key in (a,b)` or `key=value` label selector (the forms the README uses) against some labels."""
    match = re.fullmatch(r"\s*([\w./-]+)\s+in\s+\(([^)]*)\)\s*", selector)
    if match:
        return labels.get(match.group(1)) in {value.strip() for value in match.group(2).split(",")}
    key, value = selector.split("=", 1)
    return labels.get(key.strip()) == value.strip()


def _readme_kubectl() -> list[list[str]]:
    section = (ROOT / "README.md").read_text().split("### Kubernetes", 1)[1].split("\n## ", 1)[0]
    return [shlex.split(line, comments=True) for line in section.splitlines() if line.strip().startswith("kubectl ")]


def test_readme_runs_the_migration_job_to_completion_before_the_api_and_worker_roll() -> None:
    """The order the README gives: apply the Secret and the Job alone, wait for the Job, then apply the
    rest. The selector must pick exactly those two, or the Job waits for a missing Secret or the
    Deployments roll before the schema is in place."""
    commands = _readme_kubectl()
    job = MIGRATE["metadata"]["name"]
    first = next(i for i, c in enumerate(commands) if c[:2] == ["kubectl", "apply"] and "-l" in c)
    wait = next(i for i, c in enumerate(commands) if c[:2] == ["kubectl", "wait"] and f"job/{job}" in c)
    rest = next(i for i, c in enumerate(commands) if c[:2] == ["kubectl", "apply"] and "-l" not in c)
    assert first < wait < rest
    assert "--for=condition=complete" in commands[wait]
    selector = commands[first][commands[first].index("-l") + 1]
    selected = {m["kind"] for m in MANIFESTS if _selects(selector, m["metadata"]["labels"])}
    assert selected == {"Secret", "Job"}
    assert MIGRATE["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}

