"""`stop`: stop one deployment in flight, rolling it back (default) or leaving it where it is (POST .../stop)."""

from __future__ import annotations

import argparse
from typing import Any

from ecs_image_updater_cli import render
from ecs_image_updater_cli.api import ApiClient, path_of
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.exits import ExitCode
from ecs_image_updater_cli.wait import (
    ROLLED_BACK,
    STOPPED,
    StartedDeployment,
    WaitGoal,
    add_wait_arguments,
    follow_deployments,
)

ROLLBACK = "rollback"
ABORT = "abort"
# The outcome each action ends in when ECS has done what was asked; with --wait, that outcome is success.
OUTCOME_ASKED = {ROLLBACK: ROLLED_BACK, ABORT: STOPPED}

EXIT_CODES = """stop: without --wait, 0 means ECS took the request (it acts on it afterwards).
stop --wait: 0 when the deployment ended as asked (ROLLED_BACK, or STOPPED with --abort);
  1 when it ended otherwise (it completed first, the rollback failed, it was superseded);
  2 timed out; 3 refused: an unknown deployment (404), one already finished (409),
  no permission; 4 as for every command."""


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `stop`."""
    parser = commands.add_parser(
        "stop",
        parents=[common],
        help="stop a deployment in flight: roll it back, or abort it",
        description=(
            "Stop one deployment in flight with ECS's StopServiceDeployment: roll it back to the revision the "
            "service ran before (the default; it ends ROLLED_BACK), or with --abort leave it where it is "
            "(it ends STOPPED). DEPLOYMENT_ID is the ecs-svc/... id that deploy and status print (and history --json)."
        ),
        epilog=f"example: ecs-image-updater stop prod web ecs-svc/1234567890123456789 --wait\n\n{EXIT_CODES}",
    )
    parser.add_argument("cluster", help="cluster name or ARN")
    parser.add_argument("service", help="service name or ARN")
    parser.add_argument("deployment_id", metavar="DEPLOYMENT_ID", help="the ECS deployment id (ecs-svc/...)")
    parser.add_argument(
        "--abort",
        action="store_true",
        help="stop without rolling back: the deployment stays where it is (default: roll it back)",
    )
    add_wait_arguments(
        parser,
        stages=False,  # a stopped deployment moves to no further stage worth waiting for: its outcome is the goal
        wait_help="follow the deployment until it has ended as asked (exit 0), otherwise (1), or time ran out (2)",
    )
    parser.set_defaults(run=run)


def stop_path(cluster: str, service: str, deployment_id: str) -> str:
    """`/services/{cluster}/{service}/deployments/{id}/stop`, the id (ecs-svc/...) encoded as one segment."""
    return path_of("services", cluster, service, "deployments", deployment_id, "stop")


def run(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """POST the stop, show what was asked, and with --wait follow the deployment to its outcome."""
    action = ABORT if args.abort else ROLLBACK
    answer = client.post(stop_path(args.cluster, args.service, args.deployment_id), {"action": action})
    if console.json_output:
        console.json(answer)
    else:
        shown = {"cluster": args.cluster, "service": args.service, "deploymentId": args.deployment_id, **answer}
        console.out(render.stop_text({**shown, "action": answer.get("action") or action}))
    if not args.wait:
        return ExitCode.DONE
    stopped = StartedDeployment(args.cluster, args.service, args.deployment_id)
    goal = WaitGoal(succeeded=frozenset({OUTCOME_ASKED[action]}))
    return follow_deployments(console, client, [stopped], args.timeout, goal)
