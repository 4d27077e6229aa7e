"""`deploy`: roll one service, or 2 to 20 services of a cluster (all or nothing), onto an image (POST /update)."""

from __future__ import annotations

import argparse
from typing import Any

from ecs_image_updater_cli import approvals, render
from ecs_image_updater_cli.api import ApiClient
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.exits import ExitCode, RefusedError
from ecs_image_updater_cli.wait import add_wait_arguments, follow, requested_goal

MAX_SERVICES = 20


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `deploy`."""
    parser = commands.add_parser(
        "deploy",
        parents=[common],
        help="roll services onto a new image",
        description="Roll one service, or 2 to 20 services of one cluster (all or nothing), onto an image.",
        epilog="example: ecs-image-updater deploy --cluster prod --service web --image repo/web:1.4.3 --wait",
    )
    parser.add_argument("--cluster", required=True, help="cluster name or ARN")
    parser.add_argument(
        "--service",
        required=True,
        action="append",
        dest="services",
        metavar="SERVICE",
        help="service name or ARN; repeat it (or separate names with commas) for up to 20 services",
    )
    parser.add_argument("--image", required=True, metavar="REPO:TAG", help="image with its tag or @sha256: digest")
    parser.add_argument("--container", help="the one container to change (default: the service decides)")
    parser.add_argument(
        "--force-new-deployment",
        action="store_true",
        help="redeploy the running revision when the image is already the one asked for (a re-pushed tag)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would change (the diff); change nothing")
    add_wait_arguments(parser)
    parser.set_defaults(run=run)


def service_names(given: list[str]) -> list[str]:
    """The services named by repeated --service options, commas and newlines splitting names too."""
    names = [name.strip() for value in given for name in value.replace("\n", ",").split(",")]
    names = [name for name in names if name]
    if not names:
        raise RefusedError("--service names no service")
    if len(names) > MAX_SERVICES:
        raise RefusedError(f"{len(names)} services named; one deploy moves at most {MAX_SERVICES} together")
    return names


def has_tag_or_digest(image: str) -> bool:
    """True when `image` ends in `:tag` or carries `@digest` (a registry port is not a tag)."""
    if "@" in image:
        return bool(image.split("@", 1)[1])
    last_part = image.rsplit("/", 1)[-1]
    return ":" in last_part and not last_part.endswith(":")


def update_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /update body for the command line."""
    if not has_tag_or_digest(args.image):
        raise RefusedError(
            f"--image '{args.image}' has no tag or digest: give REPO:TAG or REPO@sha256:<digest>, "
            "so that what is deployed is exactly what was named"
        )
    names = service_names(args.services)
    body: dict[str, Any] = {"cluster": args.cluster}
    if len(names) == 1:
        body["service"] = names[0]
    else:
        body["services"] = names
    body["image"] = args.image
    if args.container:
        body["container"] = args.container
    if args.force_new_deployment:
        body["forceNewDeployment"] = True
    if args.dry_run:
        body["dryRun"] = True
    return body


def run(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """POST /update, show the answer, and with --wait (or --wait-until) follow the deployments it started (through
    the approval the service asks for, if it does)."""
    answer = client.post("/update", update_body(args))
    approvals.show_answers(console, [answer], args.dry_run, show_change)
    goal = requested_goal(args)
    if goal is not None and not args.dry_run:
        # A service that requires approval answered with the approval: the wait goes through it first.
        return approvals.follow_through(
            console, client, [answer], args.timeout, lambda c, api, made, left: follow(c, api, made, left, goal)
        )
    return ExitCode.DONE


def show_change(console: Console, answers: list[dict[str, Any]], dry_run: bool) -> None:
    """The answers as JSON lines, or as a table (the diff of a dry run) and a summary line."""
    if console.json_output:
        for answer in answers:
            console.json(answer)
        return
    console.out(render.dry_run_table(answers) if dry_run else render.change_table(answers))
    console.out(render.change_summary(answers, dry_run))
