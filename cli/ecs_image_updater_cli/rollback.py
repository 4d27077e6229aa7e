"""`rollback`: put a service back on the revision before the last update, or a named one (POST /rollback)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from ecs_image_updater_cli.api import ApiClient
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.deploy import show_change
from ecs_image_updater_cli.exits import ExitCode, RefusedError
from ecs_image_updater_cli.wait import add_wait_arguments, follow, requested_goal

_FAMILY_REVISION = re.compile(r"[A-Za-z0-9_-]{1,255}:[0-9]+")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `rollback`."""
    parser = commands.add_parser(
        "rollback",
        parents=[common],
        help="put a service back on its previous (or a named) revision",
        description=(
            "Put a service back on the revision it ran before the last update, or on the one named with --to. "
            "Without --to each call steps back once more; name the target to make a retry safe."
        ),
        epilog="example: ecs-image-updater rollback prod web --to web:41 --wait",
    )
    parser.add_argument("cluster", help="cluster name or ARN")
    parser.add_argument("service", help="service name or ARN")
    parser.add_argument("--to", metavar="FAMILY:REVISION", help="the revision to go back to (or its ARN)")
    add_wait_arguments(parser)
    parser.set_defaults(run=run)


def rollback_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /rollback body for the command line."""
    body: dict[str, Any] = {"cluster": args.cluster, "service": args.service}
    if args.to is not None:
        if not (_FAMILY_REVISION.fullmatch(args.to) or args.to.startswith("arn:")):
            raise RefusedError(f"--to '{args.to}' must be FAMILY:REVISION (like web:41) or a task definition ARN")
        body["taskDefinition"] = args.to
    return body


def run(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """POST /rollback, show the answer, and with --wait (or --wait-until) follow the deployment it started."""
    answer = client.post("/rollback", rollback_body(args))
    show_change(console, [answer], dry_run=False)
    goal = requested_goal(args)
    if goal is not None:
        return follow(console, client, [answer], args.timeout, goal)
    return ExitCode.DONE
