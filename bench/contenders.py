"""The ways of rolling a service onto a new image that the benchmark compares.

Each contender has its own service in the same cluster and changes the image of
its `app` container, without waiting for the rollout:

- this project's domain call, `chalicelib.deploy.update.update_image`;
- the whole app, `POST /update` through Chalice's test client (key check, JSON,
  validation, the per-service lock and the deployment record when the stage sets STATE_TABLE, audit tags,
  request log and all);
- ecs-deploy's Python API, the steps its `deploy` command takes up to the
  UpdateService call: `DeployAction`, `set_images`, `update_task_definition`,
  `deploy`;
- ecs-deploy's `deploy` command itself, in process, as fire and forget
  (`--timeout -1`) with its defaults otherwise (calls are counted, not timed).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from chalice.test import Client
from click.testing import CliRunner
from ecs_deploy import cli as ecs_deploy_cli
from ecs_deploy.ecs import DeployAction, EcsClient

from bench.world import CHANGED_CONTAINER, CLUSTER, REPOSITORY, image_with_tag
from chalicelib.aws import clients
from chalicelib.core.images import parse_image
from chalicelib.core.requests import UpdateRequest
from chalicelib.deploy.update import update_image
from tests.conftest import API_KEY, PROJECT_DIR, REGION

OURS_DIRECT = "ours-direct"
OURS_HTTP = "ours-http"
ECS_DEPLOY_API = "ecs-deploy-api"
ECS_DEPLOY_CLI = "ecs-deploy-cli"
CONTENDER_KEYS = (OURS_DIRECT, OURS_HTTP, ECS_DEPLOY_API, ECS_DEPLOY_CLI)
REQUEST_LOGGER = "ecs_image_updater.requests"


@dataclass(frozen=True)
class Contender:
    """One way of rolling a service onto a new tag, with the AWS clients it calls through."""

    key: str
    label: str
    service: str
    ours: bool
    clients: tuple[Any, ...]
    roll_to: Callable[[str], None]


def service_of(key: str) -> str:
    """The service a contender updates (each has its own, so no tool starts from another's revision)."""
    return f"web-{key}"


@contextmanager
def contenders() -> Iterator[dict[str, Contender]]:
    """Every contender, ready to roll its service; call inside `bench_world`."""
    with ExitStack() as stack:
        ours_client = clients.ecs_client()
        lock_client = clients.dynamodb_client()  # the app's lock and record, when the stage sets STATE_TABLE
        http = stack.enter_context(_app_client())
        ecs_deploy_client = EcsClient(region=REGION)
        ecs_deploy_cli_client = EcsClient(region=REGION)
        yield {
            OURS_DIRECT: Contender(
                OURS_DIRECT,
                "ours: update_image",
                service_of(OURS_DIRECT),
                True,
                (ours_client,),
                lambda tag: _roll_with_update_image(ours_client, service_of(OURS_DIRECT), tag),
            ),
            OURS_HTTP: Contender(
                OURS_HTTP,
                "ours: POST /update",
                service_of(OURS_HTTP),
                True,
                (ours_client, lock_client),
                lambda tag: _roll_with_http(http, service_of(OURS_HTTP), tag),
            ),
            ECS_DEPLOY_API: Contender(
                ECS_DEPLOY_API,
                "ecs-deploy: DeployAction",
                service_of(ECS_DEPLOY_API),
                False,
                (ecs_deploy_client.boto, ecs_deploy_client.events),
                lambda tag: _roll_with_deploy_action(ecs_deploy_client, service_of(ECS_DEPLOY_API), tag),
            ),
            ECS_DEPLOY_CLI: Contender(
                ECS_DEPLOY_CLI,
                "ecs-deploy: deploy --timeout -1",
                service_of(ECS_DEPLOY_CLI),
                False,
                (ecs_deploy_cli_client.boto, ecs_deploy_cli_client.events),
                lambda tag: _roll_with_deploy_command(ecs_deploy_cli_client, service_of(ECS_DEPLOY_CLI), tag),
            ),
        }


def _roll_with_update_image(client: Any, service: str, tag: str) -> None:
    update_image(client, UpdateRequest(CLUSTER, service, parse_image(image_with_tag(tag))))


def _roll_with_http(http: Any, service: str, tag: str) -> None:
    body = json.dumps({"cluster": CLUSTER, "service": service, "image": REPOSITORY, "tag": tag})
    headers = {"Content-Type": "application/json", "x-api-key": API_KEY}
    response = http.post("/update", headers=headers, body=body)
    if response.status_code != 200:
        raise RuntimeError(f"POST /update answered {response.status_code}: {response.body!r}")


def _roll_with_deploy_action(client: EcsClient, service: str, tag: str) -> None:
    deployment = DeployAction(client, CLUSTER, service)
    current = deployment.get_current_task_definition(deployment.service)
    current.set_images(**{CHANGED_CONTAINER: image_with_tag(tag)})
    deployment.deploy(deployment.update_task_definition(current))


def _roll_with_deploy_command(client: EcsClient, service: str, tag: str) -> None:
    arguments = [CLUSTER, service, "--image", CHANGED_CONTAINER, image_with_tag(tag), "--timeout", "-1"]
    # The command builds its own EcsClient; hand it ours so the hooks see its calls.
    with mock.patch.object(ecs_deploy_cli, "get_client", return_value=client):
        result = CliRunner().invoke(ecs_deploy_cli.deploy, arguments)
    if result.exit_code != 0:
        raise RuntimeError(f"ecs-deploy deploy exited {result.exit_code}: {result.output}")


@contextmanager
def _app_client() -> Iterator[Any]:
    """Chalice's test client over the app, with the request log written to nowhere instead of the terminal."""
    from app import app  # imported here: importing the app reads the environment set by bench_world

    with _request_log_discarded(), Client(app, stage_name="dev", project_dir=str(PROJECT_DIR)) as client:
        yield client.http


@contextmanager
def _request_log_discarded() -> Iterator[None]:
    """Keep writing (and paying for) the request log line, but to os.devnull."""
    streams = [h for h in logging.getLogger(REQUEST_LOGGER).handlers if isinstance(h, logging.StreamHandler)]
    with open(os.devnull, "w") as sink:
        previous = [handler.setStream(sink) for handler in streams]
        try:
            yield
        finally:
            for handler, stream in zip(streams, previous, strict=True):
                if stream is not None:
                    handler.setStream(stream)
