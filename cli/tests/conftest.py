"""Shared pieces of the client's tests: the CLI run as a real process, and local services to run it against.

End-to-end tests talk to `chalice local` on moto's server, started by the
project's own harness (scripts/local_aws.py); the CLI runs as a subprocess
(`python -m ecs_image_updater_cli`), so exit codes, stdout and stderr are real.
A scripted HTTP server (`server`) stands in for the service where a test needs
answers the real one cannot be made to give.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from scripts.local_aws import REGION, LocalRun, local_run

# Settings the CLI reads from the environment; the tests' own environment must not leak into a run.
CLIENT_VARIABLES = (
    "ECS_IMAGE_UPDATER_URL",
    "ECS_IMAGE_UPDATER_API_KEY",
    "API_URL",
    "API_KEY",
    "ECS_IMAGE_UPDATER_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "ECS_IMAGE_UPDATER_AUTH",
    "ECS_IMAGE_UPDATER_REGION",
)
IMAGE = "public.ecr.aws/nginx/nginx"
CLUSTER = "test-cluster"
SERVICE = "web"


@dataclass(frozen=True)
class CliResult:
    """What one run of the CLI did."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


def client_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the client's settings, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key not in CLIENT_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def cli_command(*args: str) -> list[str]:
    """The command line that runs the client with `args`."""
    return [sys.executable, "-m", "ecs_image_updater_cli", *args]


def run_cli(*args: str, env: Mapping[str, str] | None = None, cwd: Path, timeout: float = 60) -> CliResult:
    """Run the client to its end in `cwd` with only the settings in `env`."""
    finished = subprocess.run(  # noqa: S603 - our own module
        cli_command(*args),
        env=client_environment(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(finished.returncode, finished.stdout, finished.stderr)


def start_cli(*args: str, env: Mapping[str, str] | None = None, cwd: Path) -> subprocess.Popen[str]:
    """Start the client and let it run (for --wait tests that act while it waits)."""
    return subprocess.Popen(  # noqa: S603 - our own module
        cli_command(*args),
        env=client_environment(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> CliResult:
    """Wait for a started client and collect what it printed."""
    stdout, stderr = process.communicate(timeout=timeout)
    return CliResult(process.returncode, stdout, stderr)


def connection_env(service: LocalRun) -> dict[str, str]:
    """The client's settings for `service`."""
    return {"ECS_IMAGE_UPDATER_URL": service.api_url, "ECS_IMAGE_UPDATER_API_KEY": service.api_key}


def running_image(service: LocalRun) -> str:
    """The image the workload's service runs now, read from the embedded AWS."""
    ecs = _session().client("ecs", endpoint_url=service.aws_endpoint)
    described = ecs.describe_services(cluster=service.cluster, services=[service.service])["services"][0]
    task_definition = ecs.describe_task_definition(taskDefinition=described["taskDefinition"])["taskDefinition"]
    return str(task_definition["containerDefinitions"][0]["image"])


def state_table(service: LocalRun) -> Any:
    """The DynamoDB client of the embedded AWS (the state table lives there)."""
    return _session().client("dynamodb", endpoint_url=service.aws_endpoint)


def _session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)  # noqa: S106


def local_service(tmp_path_factory: pytest.TempPathFactory, rollout_seconds: float) -> Iterator[LocalRun]:
    """moto's server and `chalice local`, with the workload; deployments complete after `rollout_seconds`.

    The client's tests deploy made-up versions of a public image, which the offline run cannot look up, so
    the service checks no image (VERIFY_IMAGES=off); the checks have tests of their own (tests/deploy/test_verify.py,
    and tests/test_end_to_end.py against the local run's ECR).
    """
    log_path = tmp_path_factory.mktemp("local-service") / "servers.log"
    with (
        log_path.open("wb") as log,
        local_run(log=log.fileno(), rollout_seconds=rollout_seconds, verify_images="off") as service,
    ):
        yield service


@pytest.fixture(scope="session")
def quick_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """A local service whose deployments complete after 2 s."""
    yield from local_service(tmp_path_factory, rollout_seconds=2)


@pytest.fixture(scope="session")
def iam_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """The local stage with AUTH_MODE=iam: it checks each request's SigV4 signature (credentials local/local)."""
    log_path = tmp_path_factory.mktemp("iam-service") / "servers.log"
    with (
        log_path.open("wb") as log,
        local_run(log=log.fileno(), rollout_seconds=2, auth_mode="iam", verify_images="off") as service,
    ):
        yield service


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to run the client in (no .api.env unless a test writes one)."""
    directory = tmp_path / "work"
    directory.mkdir()
    return directory


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """Answers each request with the next scripted (status, headers, body); remembers what it received."""

    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Queue one answer: `body` as JSON (or raw bytes) with `status` and `headers`."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers.append((status, {"Content-Type": "application/json", **(headers or {})}, raw))


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted server for the client to talk to."""
    yield from _serve()


@pytest.fixture
def elsewhere() -> Iterator[ScriptedServer]:
    """A second scripted server, where a redirect points."""
    yield from _serve()


def _serve() -> Iterator[ScriptedServer]:
    script = ScriptedServer()

    class Handler(BaseHTTPRequestHandler):
        """Records each request and sends the next scripted answer."""

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            script.received.append(Received(self.command, self.path, headers, body))
            status, headers, raw = script.answers.pop(0) if script.answers else (500, {}, b"{}")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _handle

        def log_message(self, *_args: Any) -> None:
            """Keep the test output quiet."""
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        httpd.shutdown()
        httpd.server_close()
