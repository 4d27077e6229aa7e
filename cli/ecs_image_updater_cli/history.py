"""`history`: who deployed what to a service, when, and how it ended (GET /services/{c}/{s}/history)."""

from __future__ import annotations

import argparse
from typing import Any

from ecs_image_updater_cli import render
from ecs_image_updater_cli.api import ApiClient, path_of
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.exits import ExitCode

MAX_LIMIT = 100


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `history`."""
    parser = commands.add_parser(
        "history",
        parents=[common],
        help="show who deployed what to a service, and how it ended",
        description="Show a service's deployment records, newest first: when, who, images from and to, outcome.",
        epilog="example: ecs-image-updater history prod web --limit 5",
    )
    parser.add_argument("cluster", help="cluster name or ARN")
    parser.add_argument("service", help="service name or ARN")
    parser.add_argument("--limit", type=_limit, default=20, metavar="N", help=f"records per page, 1 to {MAX_LIMIT}")
    parser.add_argument("--next", metavar="TOKEN", help="the page after the one that printed this token")
    parser.set_defaults(run=run)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number from 1 to {MAX_LIMIT}")
    return value


def run(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """GET one page of the history and show it."""
    query = {"limit": str(args.limit)}
    if args.next:
        query["next"] = args.next
    body = client.get(path_of("services", args.cluster, args.service, "history"), query)
    if console.json_output:
        console.json(body)
        return ExitCode.DONE
    console.out(render.history_table(body))
    if body.get("next"):
        console.out(f"More: ecs-image-updater history {args.cluster} {args.service} --next {body['next']}")
    return ExitCode.DONE
