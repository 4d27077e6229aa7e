"""What a push costs at 1,000 opted-in services, in AWS calls by operation, and what keeping the index costs.

.venv/bin/python bench/push_cost.py          # 1,000 services; rewrites the push section of bench/results.md
.venv/bin/python bench/push_cost.py --quick  # 50 services; prints only

The world: N services tagged `image-updater:policy`, spread over 5 clusters,
each on a task definition revision of its own; 5 of them (one per cluster) run
the pushed repository. Everything is moto, in process; calls are counted by
operation with a `before-parameter-build` hook on every client the service
uses (once per call, not per retry).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moto import mock_aws

from bench.sections import run
from bench.world import OFFLINE_ENVIRONMENT, REMOVED_ENVIRONMENT

SECTION_START = "<!-- push cost: written by bench/push_cost.py -->"
SECTION_END = "<!-- end of push cost -->"
MARKERS = (SECTION_START, SECTION_END)
CLUSTERS = 5
FOLLOWING = "ghcr.io/acme/web"
PUSHED_TAG = "1.1.0"
# Measured on the code before the push queue and the follower index (commit cc5b549), the same world at 1,000:
# the push itself read every opted-in service and every revision before deciding.
BEFORE = {"GetResources": 11, "DescribeServices": 100, "DescribeTaskDefinition": 1000}
BEFORE_COMMIT = "cc5b549"
SERVICES = ("ecs", "dynamodb", "resourcegroupstaggingapi", "sqs")


@dataclass
class PushCost:
    """Calls by operation for each step, at `services` opted-in services."""

    services: int
    followers: int
    first_reconcile: Counter[str] = field(default_factory=Counter)
    second_reconcile: Counter[str] = field(default_factory=Counter)
    push: Counter[str] = field(default_factory=Counter)
    deployments: Counter[str] = field(default_factory=Counter)
    deployed: int = 0
    seconds: float = 0.0


@contextmanager
def one_request_at_a_time() -> Iterator[None]:
    """moto applies each request whole, as AWS does (its in-process backends are not thread-safe)."""
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]


@contextmanager
def offline_environment() -> Iterator[None]:
    saved = dict(os.environ)
    for name in REMOVED_ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ.update(OFFLINE_ENVIRONMENT)
    os.environ.update({"STATE_TABLE": "ecs-image-updater-state", "PUSH_QUEUE": "ecs-image-updater-push-work"})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def measure(services: int) -> PushCost:
    """Build the world, then count the calls of each step."""
    started = time.monotonic()
    with offline_environment(), mock_aws(), one_request_at_a_time():
        import functools

        import chalice.test
        from chalice import local as chalice_local
        from chalice.test import Client

        from chalicelib.aws import clients, queue
        from tests import conftest

        clients.reset_clients()
        queue.forget_urls()
        chalice.test.LambdaContext = functools.partial(chalice_local.LambdaContext, max_runtime_ms=300_000)  # type: ignore[attr-defined]
        conftest.create_state_table()
        sqs = clients.session().client("sqs")
        dead = sqs.create_queue(QueueName=conftest.PUSH_DEAD_LETTERS)["QueueUrl"]
        work = sqs.create_queue(QueueName=conftest.PUSH_QUEUE)["QueueUrl"]
        work_queue = conftest.PushQueue(work, dead)
        followers = _world(clients.session().client("ecs"), services)
        cost = PushCost(services, followers)
        made: list[str] = []
        for service in SERVICES:
            clients.cached_client(service).meta.events.register(
                "before-parameter-build", lambda model, **_: made.append(model.name)
            )
        from app import app

        with Client(app, stage_name="dev", project_dir=str(conftest.PROJECT_DIR)) as client:
            conftest.index_followers(client)
            cost.first_reconcile, made[:] = Counter(made), []
            conftest.index_followers(client)
            cost.second_reconcile, made[:] = Counter(made), []
            body = json.dumps({"repository": FOLLOWING, "tag": PUSHED_TAG})
            answer = client.http.post(
                "/hooks/push", headers={"x-api-key": conftest.API_KEY, "Content-Type": "application/json"}, body=body
            ).json_body
            cost.push, made[:] = Counter(made), []
            conftest.deliver(client, work_queue)
            cost.deployments = Counter(made)
            cost.deployed = sum(1 for d in answer["decisions"] if d["action"] == "queued")
    cost.seconds = time.monotonic() - started
    return cost


def _world(ecs: Any, services: int) -> int:
    """N opted-in services on CLUSTERS clusters, one follower of FOLLOWING per cluster; how many follow."""
    for cluster in range(CLUSTERS):
        ecs.create_cluster(clusterName=f"cluster-{cluster}")
    followers = 0
    for number in range(services):
        cluster = number % CLUSTERS
        follows = number < CLUSTERS
        followers += follows
        image = f"{FOLLOWING}:1.0.0" if follows else f"ghcr.io/acme/other-{number}:1.0.0"
        arn = ecs.register_task_definition(
            family=f"family-{number}", containerDefinitions=[{"name": "app", "image": image, "memory": 128}]
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=f"cluster-{cluster}",
            serviceName=f"service-{number}",
            taskDefinition=arn,
            desiredCount=1,
            tags=[{"key": "image-updater:policy", "value": "semver:minor"}],
        )
    return followers


def _calls(counts: Counter[str]) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "none"


def render(cost: PushCost) -> str:
    """The section of bench/results.md."""
    before = sum(BEFORE.values())
    push = sum(cost.push.values())
    per_deployment = {name: count / max(cost.deployed, 1) for name, count in cost.deployments.items()}
    expected_reconcile = math.ceil(cost.services / 100) + math.ceil(cost.services / 10) + cost.services
    lines = [
        SECTION_START,
        "## A push at 1,000 opted-in services",
        "",
        f"Run with `.venv/bin/python bench/push_cost.py` ({cost.seconds:.0f} s). {cost.services} services tagged "
        f"`image-updater:policy` on {CLUSTERS} clusters, each on a revision of its own; {cost.followers} of them "
        f"run `{FOLLOWING}`, and `{PUSHED_TAG}` is pushed to it (`POST /hooks/push`). AWS calls by operation, "
        "counted on every client the service uses, with VERIFY_IMAGES=off (bench/verify_cost.py measures the "
        "lookup a verified deployment adds); moto in process.",
        "",
        "| step | AWS calls | by operation |",
        "|---|---|---|",
        f"| the push before (commit {BEFORE_COMMIT}): read every opted-in service, then decide | {before} | "
        f"{_calls(Counter(BEFORE))} |",
        f"| **the push now**: decide from the follower index, record, queue | **{push}** | {_calls(cost.push)} |",
        f"| each of the {cost.deployed} deployments, by the queue's consumer | "
        f"{sum(cost.deployments.values()) // max(cost.deployed, 1)} | "
        + ", ".join(f"{count:g} {name}" for name, count in sorted(per_deployment.items()))
        + " |",
        f"| the hourly reconcile, first run (no revision known) | {sum(cost.first_reconcile.values())} | "
        f"{_calls(cost.first_reconcile)} |",
        f"| the hourly reconcile, later runs | {sum(cost.second_reconcile.values())} | "
        f"{_calls(cost.second_reconcile)} |",
        "",
        f"- A push costs {push} calls before its deployments, against {before} before: "
        f"{before / max(push, 1):.0f} times fewer, and the same whatever the number of opted-in services (one "
        "Query of the index's partition for the pushed repository, then one transaction and one batch of messages "
        "for up to 99 and 10 followers).",
        f"- The reconcile reads the account in ⌈N/100⌉ GetResources + a DescribeServices per 10 services of a "
        "cluster (⌈N/10⌉ here) + one "
        f"DescribeTaskDefinition per revision it has never seen ({expected_reconcile} ECS and tagging calls the "
        "first time at N = 1,000), then only what changed: a revision never changes, so it is read once.",
        "- Each deployment is the update path's 4 ECS and 2 DynamoDB calls, plus the claim of the work item "
        "(UpdateItem); the follower index and the push's state go in the transaction that writes the record.",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    return run(__doc__.splitlines()[0], measure, render, (50, 1000), "50 services, printed only", MARKERS)


if __name__ == "__main__":
    sys.exit(main())
