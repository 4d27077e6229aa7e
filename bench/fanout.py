"""One image to ten services: this service in one request, against ecs-deploy run for each service.

What ecs-deploy's users script for several services: its DeployAction for one
service after the other, or in ten threads at once. Every AWS attempt lasts a
simulated round trip (30 ms for ECS, 5 ms for DynamoDB), moto's own work
included, so the wall time shows how many round trips each side waits for in a
row. AWS here is moto's server in a process of its own, as AWS is not in the
caller's process: its work on ten calls at once does not hold the caller's
Python lock. Each of the ten services runs its own family, the case with the
most calls for us (one DescribeTaskDefinition and one RegisterTaskDefinition
per family); a second run puts the ten services on one revision (the same
API in ten cells), where ours registers one revision and ecs-deploy ten.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from ecs_deploy.ecs import DeployAction, EcsClient

from bench.contenders import _app_client
from bench.hooks import AwsCall, CallLog, SimulatedRoundTrip, operations
from bench.world import (
    CHANGED_CONTAINER,
    CLUSTER,
    WORKER_IMAGE,
    World,
    bench_world,
    image_with_tag,
    offline_environment,
    state_table,
)
from chalicelib.aws import clients
from scripts.local_aws import LOOPBACK, embedded_aws_environment, free_port, stop, wait_until_listening
from tests.conftest import API_KEY, PROJECT_DIR, REGION, create_service, create_state_table

SERVICE_COUNT = 10
# The two fleet shapes: every service on a family of its own, or all on one revision.
OWN_FAMILIES = "own families"
ONE_REVISION = "one revision"
SHAPES = (OWN_FAMILIES, ONE_REVISION)
OURS = "ours-fan-out"
SEQUENTIAL = "ecs-deploy-sequential"
THREADS = "ecs-deploy-threads"
FAN_OUT_KEYS = (OURS, SEQUENTIAL, THREADS)
LABELS = {
    OURS: "ours: POST /update with `services` (one request)",
    SEQUENTIAL: "ecs-deploy: DeployAction per service, one after the other",
    THREADS: "ecs-deploy: DeployAction per service, 10 threads",
}
SERVER_SCRIPT = PROJECT_DIR / "bench" / "aws_server.py"
ECS_ROUND_TRIP_S = 0.030
DYNAMODB_ROUND_TRIP_S = 0.005


@dataclass(frozen=True)
class FanOutFindings:
    """Calls of one 10-service rollout per contender, and median wall times with the simulated round trips."""

    shape: str
    calls: dict[str, list[AwsCall]]
    median_ms: dict[str, float]
    rounds: int
    bare_ms: dict[str, float]
    cpu_ms: dict[str, float]

    def ratio(self, theirs: str) -> float:
        """Our median wall time over theirs."""
        return self.median_ms[OURS] / self.median_ms[theirs]


def fleet_names(prefix: str) -> list[str]:
    """The ten services of one contender."""
    return [f"{prefix}-{number}" for number in range(SERVICE_COUNT)]


def create_fleet(world: World, prefix: str, shape: str) -> list[str]:
    """Ten services with an app and a worker container, as most services have, of the given shape.

    Lean on purpose: the copy's fidelity is measured on the rich task definition
    of the single-service run; here moto's own CPU time per call, which a real ECS
    does not add to its callers', is kept small beside the round trips compared.
    """
    containers = [
        {"name": CHANGED_CONTAINER, "image": image_with_tag("1.0"), "memory": 256, "essential": True},
        {"name": "worker", "image": WORKER_IMAGE, "memory": 128, "essential": False},
    ]
    names = fleet_names(prefix)
    shared: str | None = None
    for name in names:
        if shape == OWN_FAMILIES or shared is None:
            family = name if shape == OWN_FAMILIES else prefix
            registered = world.setup_ecs.register_task_definition(family=family, containerDefinitions=containers)
            shared = registered["taskDefinition"]["taskDefinitionArn"]
        create_service(world.setup_ecs, CLUSTER, name, shared)
    return names


@contextmanager
def server_world() -> Iterator[World]:
    """moto's server on loopback as the AWS of every client made inside (the app's too), with the state table."""
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    with open(os.devnull, "wb") as sink:
        moto = subprocess.Popen(  # noqa: S603 - fixed command line
            [sys.executable, str(SERVER_SCRIPT), str(port)],
            env={**embedded_aws_environment(endpoint), "PYTHONPATH": str(PROJECT_DIR)},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_listening(f"{endpoint}/moto-api/", moto)
        with offline_environment(), mock.patch.dict(os.environ, {"AWS_ENDPOINT_URL": endpoint}):
            clients.reset_clients()
            try:
                setup_ecs = clients.session().client("ecs", region_name=REGION)
                setup_ecs.create_cluster(clusterName=CLUSTER)
                if table := state_table():
                    create_state_table(table)
                yield World(setup_ecs)
            finally:
                clients.reset_clients()
    finally:
        stop(moto)


@contextmanager
def fan_out_contenders(shape: str, server: bool = True) -> Iterator[tuple[dict[str, Callable[[str], None]], list[Any]]]:
    """Each contender as `roll(tag)` over its own ten services, and every client they call through.

    `server` False runs moto in process (enough to count calls, not to time them).
    """
    with server_world() if server else bench_world([]) as world, _app_client() as http:
        fleets = {key: create_fleet(world, key, shape) for key in FAN_OUT_KEYS}
        sequential_client = EcsClient(region=REGION)
        thread_clients = [EcsClient(region=REGION) for _ in range(SERVICE_COUNT)]

        def ours(tag: str) -> None:
            body = json.dumps({"cluster": CLUSTER, "services": fleets[OURS], "image": image_with_tag(tag)})
            headers = {"Content-Type": "application/json", "x-api-key": API_KEY}
            response = http.post("/update", headers=headers, body=body)
            if response.status_code != 200:
                raise RuntimeError(f"POST /update answered {response.status_code}: {response.body!r}")

        def sequential(tag: str) -> None:
            for service in fleets[SEQUENTIAL]:
                _deploy(sequential_client, service, tag)

        def threads(tag: str) -> None:
            errors: list[BaseException] = []

            def one(client: EcsClient, service: str) -> None:
                try:
                    _deploy(client, service, tag)
                except BaseException as error:
                    errors.append(error)

            workers = [
                threading.Thread(target=one, args=pair) for pair in zip(thread_clients, fleets[THREADS], strict=True)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            if errors:
                raise errors[0]

        made = [clients.ecs_client(), clients.dynamodb_client(), sequential_client.boto]
        made += [client.boto for client in thread_clients]
        yield {OURS: ours, SEQUENTIAL: sequential, THREADS: threads}, [world, *made]


def _deploy(client: EcsClient, service: str, tag: str) -> None:
    deployment = DeployAction(client, CLUSTER, service)
    current = deployment.get_current_task_definition(deployment.service)
    current.set_images(**{CHANGED_CONTAINER: image_with_tag(tag)})
    deployment.deploy(deployment.update_task_definition(current))


def measure_fan_out(shape: str, rounds: int, server: bool = True) -> FanOutFindings:
    """Count one rollout's calls per contender, then time `rounds` rollouts each, taking turns.

    Timed twice: without the simulated round trips (what moto and the clients'
    own work cost in this harness), and with them.
    """
    call_log = CallLog()
    with fan_out_contenders(shape, server) as (rolls, watched):
        world, *clients = watched
        for client in clients:
            call_log.watch(client)
        calls = {key: call_log.calls_made_by(lambda roll=roll: roll("2.0")) for key, roll in rolls.items()}
        world.forget_records()
        bare, _ = _median_wall_times(rolls, rounds, "3", world)
        ecs_trip, dynamodb_trip = SimulatedRoundTrip(), SimulatedRoundTrip()
        for client in clients:
            (dynamodb_trip if client.meta.service_model.endpoint_prefix == "dynamodb" else ecs_trip).attach(client)
        ecs_trip.seconds, dynamodb_trip.seconds = ECS_ROUND_TRIP_S, DYNAMODB_ROUND_TRIP_S
        timed, cpu = _median_wall_times(rolls, rounds, "4", world)
    return FanOutFindings(shape, calls, timed, rounds, bare, cpu)


def _median_wall_times(
    rolls: dict[str, Callable[[str], None]], rounds: int, tag_prefix: str, world: World
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time of each contender's rollout, and the median CPU time its own process spent on it.

    The CPU time is the caller's (every thread of this process; moto's server
    is another process), the work Python does one thread at a time.
    """
    walls: dict[str, list[float]] = {key: [] for key in rolls}
    cpus: dict[str, list[float]] = {key: [] for key in rolls}
    for number in range(rounds):
        for key, roll in rolls.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            roll(f"{tag_prefix}.{number}")
            walls[key].append((time.perf_counter() - started) * 1000)
            cpus[key].append((time.process_time() - cpu_started) * 1000)
        world.forget_records()
    return _medians(walls), _medians(cpus)


def _medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {key: statistics.median(values) if values else 0.0 for key, values in samples.items()}


def waits_in_a_row(calls: Sequence[AwsCall], key: str) -> int:
    """Round trips on the critical path: ours waits once per wave, ecs-deploy once per call of a service."""
    if key == OURS:
        ecs = operations(calls, "ecs")
        waves = len(dict.fromkeys(ecs))  # describe services, describe revisions, register, update
        return waves + len(operations(calls, "dynamodb"))
    per_service = len(calls) // SERVICE_COUNT
    return per_service * (SERVICE_COUNT if key == SEQUENTIAL else 1)


def render_fan_out(runs: Sequence[FanOutFindings]) -> list[str]:
    """The section of bench/results.md about rolling one image onto ten services."""
    lines = [
        "## One image to ten services",
        "",
        f"Every ECS attempt lasts at least {ECS_ROUND_TRIP_S * 1000:g} ms and every DynamoDB attempt "
        f"{DYNAMODB_ROUND_TRIP_S * 1000:g} ms, moto's own work included; AWS is moto's server in a process of its "
        "own (`bench/aws_server.py`, with keep-alive as AWS's endpoints). Run twice: every service on a family of "
        "its own, and all ten on one revision.",
        "",
    ]
    for found in runs:
        rows = [[f"{found.shape}: measure", *(LABELS[key] for key in FAN_OUT_KEYS)]]
        rows.append(["AWS calls for 10 services", *(_calls(found.calls[key]) for key in FAN_OUT_KEYS)])
        rows.append(["  ECS, by operation", *(_by_operation(found.calls[key], "ecs") for key in FAN_OUT_KEYS)])
        rows.append(["  DynamoDB", *(_by_operation(found.calls[key], "dynamodb") or "none" for key in FAN_OUT_KEYS)])
        rows.append(
            ["round trips waited in a row", *(str(waits_in_a_row(found.calls[key], key)) for key in FAN_OUT_KEYS)]
        )
        rows.append(
            [f"median ms, no round trip (n={found.rounds})", *(f"{found.bare_ms[key]:.0f}" for key in FAN_OUT_KEYS)]
        )
        rows.append(
            [
                f"median ms, with round trips (n={found.rounds})",
                *(f"{found.median_ms[key]:.0f}" for key in FAN_OUT_KEYS),
            ]
        )
        rows.append(
            ["ours/theirs, with round trips", "", f"{found.ratio(SEQUENTIAL):.2f}", f"{found.ratio(THREADS):.2f}"]
        )
        rows.append(
            [
                f"median CPU ms of the caller, with round trips (n={found.rounds})",
                *(f"{found.cpu_ms[key]:.0f}" for key in FAN_OUT_KEYS),
            ]
        )
        lines += [*_markdown(rows), ""]
    own, one = (next(f for f in runs if f.shape == shape) for shape in SHAPES)
    lines += [
        f"- One request for ten services takes {own.ratio(SEQUENTIAL):.2f} of the wall time of ecs-deploy run for one "
        f"service after the other when each has a family of its own, and {one.ratio(SEQUENTIAL):.2f} when they "
        "share a revision (one new revision instead of ten). Its calls run in waves, each at once: the lock, "
        "describe the services, describe the revisions, register, update, the records.",
        f"- Without any round trip, this harness itself costs ours {own.bare_ms[OURS]:.0f} ms for the ten families, "
        "and that work does not overlap: moto's server handles the calls of a wave one after the other (one Python "
        "process, a few ms of CPU each, where ECS answers them side by side), and the caller's own CPU, "
        f"{own.cpu_ms[OURS]:.0f} ms per request here (botocore building, signing and parsing "
        f"{len(own.calls[OURS])} calls, almost all of it), runs one thread at a time under Python's global lock. "
        "That work, not the round trips, is what ours waits for beyond the round trips; the round trips alone "
        f"would give {_round_trip_ratio(own):.2f} ({waits_in_a_row(own.calls[OURS], OURS)} waits in a row against "
        f"{waits_in_a_row(own.calls[SEQUENTIAL], SEQUENTIAL)}), and against ECS's real latencies (often 100 ms "
        "and more per call) the ratio only falls. The same CPU is why the API function is given 1769 MB, one "
        "full vCPU in Lambda's terms (see docs/configuration.md).",
        "- Ten threads of ecs-deploy wait as few round trips in a row, but lock nothing, record nothing, and a "
        "failure midway leaves the services on mixed revisions; ours puts every service back (or says which are "
        "left where) and registers one revision per distinct revision, not one per service.",
        "",
    ]
    return lines


def _round_trip_ratio(found: FanOutFindings) -> float:
    """Ours over the sequential loop, counting only the simulated round trips on each critical path."""
    ours = found.calls[OURS]
    waves = len(dict.fromkeys(operations(ours, "ecs")))
    mine = waves * ECS_ROUND_TRIP_S + len(operations(ours, "dynamodb")) * DYNAMODB_ROUND_TRIP_S
    return mine / (len(found.calls[SEQUENTIAL]) * ECS_ROUND_TRIP_S)


def _markdown(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    table.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return table


def _calls(calls: Sequence[AwsCall]) -> str:
    ecs = len(operations(calls, "ecs"))
    other = len(calls) - ecs
    return f"{len(calls)} ({ecs} ECS" + (f" + {other} DynamoDB)" if other else ")")


def _by_operation(calls: Sequence[AwsCall], service: str) -> str:
    names = operations(calls, service)
    counted = {name: names.count(name) for name in dict.fromkeys(names)}
    return ", ".join(f"{count} {name}" for name, count in counted.items())
