"""docker-compose.yml and the Dockerfile are checked here because no Docker engine runs in CI: a typo in a
command, a replica pointed at the wrong database or an image missing half the code would otherwise only
show up on someone's `docker compose up`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from setuptools import find_namespace_packages, find_packages  # type: ignore[import-untyped]

from api.cli import build_parser
from tests.support.deployment import ROOT, beacon_args, compose_file, dockerfile_instructions

COMPOSE = compose_file()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BEACON_SERVICES = {name: s for name, s in SERVICES.items() if s.get("command", [None])[0] == "beacon"}


def _cli(service: dict[str, Any]) -> Any:
    return beacon_args(service["command"])


def _replicas() -> dict[str, Any]:
    parsed = {name: _cli(service) for name, service in BEACON_SERVICES.items()}
    return {name: args for name, args in parsed.items() if args.command == "serve"}


def test_topology_is_postgres_two_api_replicas_and_one_worker() -> None:
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    commands = sorted(_cli(s).command for s in BEACON_SERVICES.values())
    assert commands.count("serve") == 2
    assert commands.count("worker") == 1
    assert set(commands) <= {"serve", "worker", "migrate"}
    for name, args in _replicas().items():
        assert args.no_worker, f"{name} must leave projections to the worker service"
        assert args.host == "0.0.0.0", f"{name} must listen beyond its own container"


def test_every_beacon_service_builds_the_local_image() -> None:
    for name, service in BEACON_SERVICES.items():
        assert service.get("build") == ".", name
        assert "image" in service, name


def test_replica_ports_publish_the_port_beacon_listens_on() -> None:
    published = []
    for name, args in _replicas().items():
        (mapping,) = SERVICES[name]["ports"]
        host_port, container_port = str(mapping).rsplit(":", 1)
        assert int(container_port) == args.port, name
        published.append(host_port)
    assert len(set(published)) == len(published), "two replicas cannot publish the same host port"


def test_database_urls_point_at_the_postgres_service_with_its_credentials() -> None:
    postgres_env = SERVICES["postgres"]["environment"]
    for name, service in BEACON_SERVICES.items():
        url = urlsplit(service["environment"]["DATABASE_URL"])
        assert url.scheme in {"postgresql", "postgres"}, name
        assert url.hostname == "postgres", name
        assert url.port in (None, 5432), name
        assert url.username == postgres_env["POSTGRES_USER"], name
        assert url.password == postgres_env["POSTGRES_PASSWORD"], name
        assert url.path == "/" + postgres_env["POSTGRES_DB"], name


def test_postgres_is_healthchecked_and_keeps_its_data_in_a_named_volume() -> None:
    postgres = SERVICES["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    (volume,) = postgres["volumes"]
    name, target = volume.split(":")[:2]
    assert target == "/var/lib/postgresql/data"
    assert name in COMPOSE["volumes"]


def test_beacon_services_wait_for_a_healthy_postgres() -> None:
    for name, service in BEACON_SERVICES.items():
        depends_on = service["depends_on"]
        assert depends_on["postgres"]["condition"] == "service_healthy", name
        for dependency, rule in depends_on.items():
            assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"
            if dependency in BEACON_SERVICES and _cli(SERVICES[dependency]).command == "migrate":
                assert rule["condition"] == "service_completed_successfully", f"{name} must wait for migrate"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def health_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _healthcheck_command(service_name: str, port: int, path: str = "/healthz") -> list[str]:
    """The replica's healthcheck, aimed at a local server instead of the container's own port."""
    test = SERVICES[service_name]["healthcheck"]["test"]
    assert test[0] == "CMD", "exec form: slim images have no curl, the check is a python one-liner"
    listen_port = _replicas()[service_name].port
    url = f"http://127.0.0.1:{listen_port}/healthz"
    assert any(url in part for part in test), f"{service_name} must check {url}"
    command = [part.replace(url, f"http://127.0.0.1:{port}{path}") for part in test[1:]]
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@pytest.mark.parametrize("service_name", sorted(_replicas()))
def test_replica_healthcheck_passes_on_healthz_and_fails_otherwise(service_name: str, health_server: int) -> None:
    ok = subprocess.run(_healthcheck_command(service_name, health_server), capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr.decode()
    missing = subprocess.run(
        _healthcheck_command(service_name, health_server, "/nothing-here"), capture_output=True, timeout=30
    )
    assert missing.returncode != 0


def test_dockerfile_builds_on_python_311_slim_and_runs_beacon_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    (cmd,) = [args for op, args in instructions if op == "CMD"]
    command = json.loads(cmd)
    assert command[:2] == ["beacon", "serve"]
    build_parser().parse_args(command[1:])
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert "BEACON_HOST=0.0.0.0" in env, "the image's default `beacon serve` must be reachable from outside"


def test_dockerfile_copies_and_installs_every_package_of_the_project() -> None:
    instructions = dockerfile_instructions()
    copied = {args.split()[0].rstrip("/") for op, args in instructions if op == "COPY"}
    assert "pyproject.toml" in copied
    assert any(re.search(r"\bpip install \.(\s|$)", args) for op, args in instructions if op == "RUN")
    top_level = {"domain", "infra", "projections", "process_managers", "api"}
    assert top_level <= copied, "every top-level package must be in the image"
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not (top_level | {"pyproject.toml"}) & ignored


def test_packaging_includes_every_python_package_in_the_source_tree() -> None:
    """A non-editable install (the image's `pip install .`) ships only what setuptools finds; a missing
    subpackage such as `api.controllers` would only fail when the container starts."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    if isinstance(packages, list):
        shipped = set(packages)
    else:
        find = packages["find"]
        finder = find_namespace_packages if find.get("namespaces", True) else find_packages
        shipped = set(finder(where=str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    roots = ("domain", "infra", "projections", "process_managers", "api")
    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for root in roots
        for init in (ROOT / root).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert in_tree <= shipped
    assert all(name.split(".")[0] in roots for name in shipped), "tests and bench do not belong in the wheel"
    assert not any("__pycache__" in name for name in shipped)
