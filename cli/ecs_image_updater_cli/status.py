"""`status`: a service now, and how its newest deployment (or a named one) is going (GET /services/{c}/{s})."""

from __future__ import annotations

import argparse
from typing import Any

from ecs_image_updater_cli import render
from ecs_image_updater_cli.api import ApiClient, path_of
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.exits import ExitCode
from ecs_image_updater_cli.wait import FAILED_OUTCOMES


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `status`."""
    parser = commands.add_parser(
        "status",
        parents=[common],
        help="show a service and how its deployment is going",
        description=(
            "Show a service: its strategy, tasks, revision, images, deployments and the newest deployment's "
            "lifecycle stage. Exits 1 when the newest deployment (or the one named with --deployment) failed, "
            "was rolled back, was stopped or was superseded, else 0."
        ),
        epilog="example: ecs-image-updater status prod web",
    )
    parser.add_argument("cluster", help="cluster name or ARN")
    parser.add_argument("service", help="service name or ARN")
    parser.add_argument("--deployment", metavar="ID", help="judge this ECS deployment (ecs-svc/...) too")
    parser.set_defaults(run=run)


def status_exit_code(body: dict[str, Any]) -> ExitCode:
    """1 when the deployment judged (the named one, else the newest) failed, was rolled back, stopped or superseded."""
    verdict = body.get("deployment")
    outcome = verdict.get("outcome") if isinstance(verdict, dict) else body.get("outcome")
    return ExitCode.FAILED if outcome in FAILED_OUTCOMES else ExitCode.DONE


def run(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """GET the status and show it."""
    query = {"deployment": args.deployment} if args.deployment else None
    body = client.get(path_of("services", args.cluster, args.service), query)
    if console.json_output:
        console.json(body)
    else:
        console.out(render.status_text(body))
    return status_exit_code(body)
