"""`apply`: make services match their description files, one all-or-nothing POST /apply per cluster."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from ecs_image_updater_cli import approvals
from ecs_image_updater_cli.api import ApiClient
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.deploy import show_change
from ecs_image_updater_cli.descriptions import DescribedService, by_cluster, load_descriptions
from ecs_image_updater_cli.exits import CliError, ExitCode
from ecs_image_updater_cli.wait import add_wait_arguments, follow, requested_goal

_DESCRIPTION_INDEX = re.compile(r"descriptions\[(\d+)\]")
_SERVICE_NAME = re.compile(r"service '([A-Za-z0-9_-]+)'")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `apply`."""
    parser = commands.add_parser(
        "apply",
        parents=[common],
        help="make services match their description files",
        description=(
            "Make services match their description files (YAML or JSON: cluster, service, containers). "
            "A directory means every *.yaml, *.yml and *.json file in it. Each cluster is applied all or "
            "nothing in one request; with several clusters, each is first checked with a dry run, so that a "
            "refusal leaves every cluster as it was."
        ),
        epilog="example: ecs-image-updater apply deploy/prod/ --wait",
    )
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR", help="description files, or directories of them")
    parser.add_argument("--dry-run", action="store_true", help="show what would change (the diff); change nothing")
    add_wait_arguments(parser)
    parser.set_defaults(run=run)


def apply_bodies(groups: dict[str, list[DescribedService]], dry_run: bool) -> list[dict[str, Any]]:
    """One POST /apply body per cluster, its descriptions in the order given."""
    return [{"descriptions": [item.description for item in group], "dryRun": dry_run} for group in groups.values()]


def run(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """Load and check the files, POST /apply per cluster, show the answers, and with --wait(-until) follow them."""
    groups = by_cluster(load_descriptions(args.paths))
    bodies = apply_bodies(groups, args.dry_run)
    sources = [[item.source for item in group] for group in groups.values()]
    clusters = list(groups)
    if len(groups) > 1 and not args.dry_run:
        for position, body in enumerate(bodies):
            _apply(client, {**body, "dryRun": True}, sources[position], applied=[])
    answers: list[dict[str, Any]] = []
    try:
        for position, body in enumerate(bodies):
            answers.append(_apply(client, body, sources[position], applied=clusters[:position]))
    finally:
        if answers:  # on a failure too: what the clusters before it changed
            approvals.show_answers(console, answers, args.dry_run, show_change)
    goal = requested_goal(args)
    if goal is not None and not args.dry_run:
        return approvals.follow_through(
            console, client, answers, args.timeout, lambda c, api, made, left: follow(c, api, made, left, goal)
        )
    return ExitCode.DONE


def _apply(client: ApiClient, body: dict[str, Any], sources: Sequence[str], applied: Sequence[str]) -> dict[str, Any]:
    """POST /apply; a failure names the file(s) its message is about, and what was applied already."""
    try:
        return client.post("/apply", body)
    except CliError as failure:
        failure.message += _files_concerned(failure.message, body["descriptions"], sources)
        if applied:
            failure.message += f" (already applied: cluster(s) {', '.join(applied)})"
        raise


def _files_concerned(message: str, descriptions: Sequence[dict[str, Any]], sources: Sequence[str]) -> str:
    """` (in web.yaml)`: the files of the descriptions the message names (by index or service), else all of them."""
    named = {int(index) for index in _DESCRIPTION_INDEX.findall(message) if int(index) < len(sources)}
    services = set(_SERVICE_NAME.findall(message))
    named |= {
        index
        for index, description in enumerate(descriptions)
        if str(description["service"]).rsplit("/", 1)[-1] in services
    }
    files = [sources[index] for index in sorted(named)] if named else list(sources)
    unique = list(dict.fromkeys(files))
    return f" (in {', '.join(unique)})"
