"""The embedded AWS the benchmark runs in: one cluster, one identical service per contender.

The workload is the test suite's rich Fargate task definition (two containers,
environment, secrets, tags, and most other fields ECS offers), so both tools copy
the same thing and a field either one drops shows up in the fidelity check.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from moto import mock_aws

from chalicelib.aws import clients
from tests.conftest import (
    API_KEY,
    ECR,
    PROJECT_DIR,
    REGION,
    create_service,
    create_state_table,
    register,
    rich_container,
)

CLUSTER = "bench-cluster"
REPOSITORY = f"{ECR}/web"
CHANGED_CONTAINER = "app"
WORKER_IMAGE = "registry.example.com:5000/team/worker:3"
FIRST_TAG = "1.0"

# Fake credentials and a region; the local API key so POST /update checks it as on the `local` stage.
OFFLINE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    "LOCAL_API_KEY": API_KEY,
    # The comparison with ecs-deploy (which checks no image) measures the update itself; what verifying the
    # image adds is measured on its own by bench/verify_cost.py.
    "VERIFY_IMAGES": "off",
}
# Anything that could point a client at a real endpoint or account.
REMOVED_ENVIRONMENT = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "REQUIRE_LOOPBACK_AWS")
APP_STAGE = "dev"


@dataclass(frozen=True)
class World:
    """The moto backend, seen through a plain client that the benchmark never counts or slows."""

    setup_ecs: Any

    def running_arn(self, service: str) -> str:
        """ARN of the task definition the service runs now."""
        described = self.setup_ecs.describe_services(cluster=CLUSTER, services=[service])
        return described["services"][0]["taskDefinition"]

    def forget_records(self) -> None:
        """Delete the deployment records and pointers the app wrote (its locks are gone already).

        moto's TransactWriteItems copies the whole table to be able to undo it, so
        its cost grows with every item; DynamoDB's does not. Emptying the table
        between rounds keeps each update meeting a table as cheap as a real one.
        """
        table = state_table()
        if table is None:
            return
        dynamodb = clients.session().client("dynamodb", region_name=REGION)
        for item in dynamodb.scan(TableName=table, ProjectionExpression="pk, sk")["Items"]:
            dynamodb.delete_item(TableName=table, Key=item)

    def revision_with_tags(self, arn: str) -> dict[str, Any]:
        """The revision as DescribeTaskDefinition returns it, with its tags under `tags`."""
        response = self.setup_ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        return {**response["taskDefinition"], "tags": response.get("tags", [])}


def image_with_tag(tag: str) -> str:
    """The image reference every contender rolls the `app` container onto."""
    return f"{REPOSITORY}:{tag}"


def stage_environment(stage: str = APP_STAGE) -> dict[str, str]:
    """The environment variables `.chalice/config.json` gives the app on `stage` (Chalice's test client sets them)."""
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def state_table() -> str | None:
    """The DynamoDB state table (locks and records) the app's stage names, if it names one."""
    return stage_environment().get("STATE_TABLE")


@contextmanager
def offline_environment() -> Iterator[None]:
    """Set the offline environment for the enclosed block and restore the caller's afterwards."""
    with mock.patch.dict(os.environ, OFFLINE_ENVIRONMENT):
        for name in [*REMOVED_ENVIRONMENT, *(key for key in os.environ if key.startswith("AWS_ENDPOINT_URL"))]:
            os.environ.pop(name, None)
        yield


@contextmanager
def bench_world(services: Sequence[str]) -> Iterator[World]:
    """An in-process AWS with the cluster, one service per name on its own identical revision, and the state table."""
    with offline_environment(), mock_aws():
        clients.reset_clients()
        try:
            setup_ecs = clients.session().client("ecs", region_name=REGION)
            setup_ecs.create_cluster(clusterName=CLUSTER)
            if table := state_table():
                create_state_table(table)
            for service in services:
                containers = [
                    rich_container(CHANGED_CONTAINER, image_with_tag(FIRST_TAG)),
                    rich_container("worker", WORKER_IMAGE),
                ]
                create_service(setup_ecs, CLUSTER, service, register(setup_ecs, containers))
            yield World(setup_ecs)
        finally:
            clients.reset_clients()
