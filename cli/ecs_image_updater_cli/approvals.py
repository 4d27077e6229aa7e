"""`approvals`, `approve ID`, `reject ID`, and waiting through an approval (`deploy --wait`).

A service tagged `image-updater:approvals` answers a change with 202 and a
pending approval instead of deploying. `deploy --wait` then polls
`GET /approvals/{id}`, saying whom it waits for and each vote as it comes, and
once the approval deploys follows that deployment like its own; an approval
that ends otherwise (rejected, expired, superseded, stale, failed) ends the
command with exit code 1.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecs_image_updater_cli import render
from ecs_image_updater_cli.api import ApiClient, path_of
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.durations import format_elapsed
from ecs_image_updater_cli.exits import ExitCode, RefusedError

APPROVAL_REQUIRED = "ApprovalRequired"
WAITING = frozenset({"PENDING", "APPROVING"})
FIRST_POLL_SECONDS = 2.0
LONGEST_POLL_SECONDS = 10.0


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `approvals`, `approve` and `reject`."""
    listing = commands.add_parser(
        "approvals",
        parents=[common],
        help="list the approvals you may vote on",
        description="List the pending approvals you may vote on (the approve action), oldest first.",
        epilog="example: ecs-image-updater approvals --cluster prod",
    )
    listing.add_argument("--cluster", help="only this cluster's (name or ARN)")
    listing.add_argument("--service", help="only this service's (name or ARN)")
    listing.set_defaults(run=run_list)
    verbs = (("approve", "approve a change; the N-th approval deploys it"), ("reject", "reject a change"))
    for decision, verb in verbs:
        parser = commands.add_parser(
            decision,
            parents=[common],
            help=verb,
            description=f"{verb[0].upper()}{verb[1:]} (POST /approvals/ID).",
            epilog=f"example: ecs-image-updater {decision} 3f9c0d6a2b1e4c58 --comment 'release notes read'",
        )
        parser.add_argument("approval", metavar="ID", help="the approval's id (from deploy, or approvals)")
        parser.add_argument("--comment", help="why, kept with the vote")
        parser.set_defaults(run=run_vote, decision=decision)


def is_approval_required(answer: Mapping[str, Any]) -> bool:
    """True when a change was answered 202 with a pending approval instead of a deployment."""
    return answer.get("Code") == APPROVAL_REQUIRED and isinstance(answer.get("approval"), Mapping)


def run_list(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """GET /approvals."""
    query = {name: value for name in ("cluster", "service") if (value := getattr(args, name))}
    answer = client.get("/approvals", query or None)
    if console.json_output:
        console.json(answer)
        return ExitCode.DONE
    found = [a for a in answer.get("approvals") or [] if isinstance(a, Mapping)]
    if not found:
        console.out("No approvals to vote on.")
        return ExitCode.DONE
    rows = [
        [
            str(a.get("id")),
            f"{a.get('cluster')}/{','.join(str(s.get('service')) for s in a.get('services') or [])}",
            _what(a),
            f"{a.get('approvals')}/{a.get('required')}",
            str(a.get("requestedBy")),
            str(a.get("deadline")),
            str(a.get("status")),
        ]
        for a in found
    ]
    console.out(render.table(["ID", "SERVICE", "IMAGES", "VOTES", "REQUESTED BY", "DEADLINE", "STATUS"], rows))
    return ExitCode.DONE


def run_vote(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """POST /approvals/ID with the decision; the N-th approval's deployment is shown."""
    body: dict[str, Any] = {"decision": args.decision}
    if args.comment:
        body["comment"] = args.comment
    answer = client.post(path_of("approvals", _approval_id(args.approval)), body)
    if console.json_output:
        console.json(answer)
        return ExitCode.DONE
    approval = answer.get("approval") or {}
    console.out(describe(approval))
    deployment = answer.get("deployment")
    if isinstance(deployment, Mapping):
        console.out(render.change_table([deployment]))
    told = answer.get("serviceDeployment")
    if isinstance(told, Mapping):  # a pause: ECS was told to go on
        ident = str(told.get("arn")).rsplit("/", 1)[-1]
        console.out(f"ECS was told to {told.get('action')} service deployment {ident}")
    return ExitCode.DONE


def describe(approval: Mapping[str, Any]) -> str:
    """One line: the approval, its status and votes."""
    by = ", ".join(str(who) for who in approval.get("approvedBy") or [])
    line = (
        f"Approval {approval.get('id')} of {_services(approval)}: {approval.get('status')}, "
        f"{approval.get('approvals')} of {approval.get('required')} approvals" + (f" (by {by})" if by else "")
    )
    if approval.get("reason"):
        line += f": {approval.get('reason')}"
    return line


def wait_through(
    console: Console,
    client: ApiClient,
    answer: Mapping[str, Any],
    timeout_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[dict[str, Any]] | None, int, float]:
    """Wait for the approval a change was answered with: (the /update bodies of what it deployed, exit code, the
    seconds left); bodies None when it ended otherwise, or the wait timed out (the exit code says which)."""
    approval = dict(answer["approval"])
    began = clock()
    approval_id = str(approval.get("id"))
    seen = _fetch(client, approval_id)
    if not console.json_output:
        console.out(waiting_line(seen))
    said = (seen.get("approvals"), seen.get("status"))
    pause = FIRST_POLL_SECONDS
    while str(seen.get("status")) in WAITING:
        left = timeout_seconds - (clock() - began)
        if left <= 0:
            console.err(
                f"timed out after {format_elapsed(timeout_seconds)} waiting for approval {approval_id} "
                f"({seen.get('approvals')} of {seen.get('required')}); it stays open until {seen.get('deadline')}"
            )
            return None, ExitCode.TIMED_OUT, 0.0
        sleep(min(pause, left))
        pause = min(pause * 1.5, LONGEST_POLL_SECONDS)
        seen = _fetch(client, approval_id)
        now = (seen.get("approvals"), seen.get("status"))
        if now != said and not console.json_output:
            console.out(describe(seen))
        said = now
    left = max(timeout_seconds - (clock() - began), 0.0)
    if console.json_output:
        console.json(seen)
    if seen.get("status") != "DEPLOYED":
        console.err(f"error: approval {approval_id} ended {seen.get('status')}: {seen.get('reason') or 'no reason'}")
        return None, ExitCode.FAILED, left
    if not console.json_output:
        console.out(describe(seen))
    cluster = str(seen.get("clusterIdentifier") or seen.get("cluster"))
    bodies = [
        {"changed": True, "cluster": cluster, "service": d.get("service"), "deployment": {"id": d.get("deploymentId")}}
        for d in seen.get("deployments") or []
        if isinstance(d, Mapping)
    ]
    return bodies, ExitCode.DONE, left


def waiting_line(approval: Mapping[str, Any]) -> str:
    """Whom the wait is for: the votes needed, the principals who may give them, the deadline."""
    approvers = approval.get("approvers")
    who = (
        "anyone the service's permissions let approve"
        if approvers is None
        else (", ".join(str(p) for p in approvers) or "nobody: no rule gives approve on these services")
    )
    return (
        f"Waiting for approval {approval.get('id')} of {_services(approval)} "
        f"({approval.get('approvals')} of {approval.get('required')} approvals, until {approval.get('deadline')}) "
        f"from {who}, not {approval.get('requestedBy')}: ecs-image-updater approve {approval.get('id')}"
    )


def _fetch(client: ApiClient, approval_id: str) -> dict[str, Any]:
    return client.get(path_of("approvals", approval_id))


def _approval_id(value: str) -> str:
    text = value.strip().lower()
    if len(text) != 16 or any(c not in "0123456789abcdef" for c in text):
        raise RefusedError(f"'{value}' is not an approval id (16 hexadecimal digits)")
    return text


def _services(approval: Mapping[str, Any]) -> str:
    names = ",".join(str(s.get("service")) for s in approval.get("services") or [] if isinstance(s, Mapping))
    return f"{approval.get('cluster')}/{names}"


def _what(approval: Mapping[str, Any]) -> str:
    """What deciding acts on: the images a change deploys, or for a pause the stage ECS waits at."""
    if approval.get("kind") != "pause":
        return _images(approval)
    stage = (approval.get("hook") or {}).get("lifecycleStage") or "a hook"
    images = _images(approval)
    return f"paused-at:{stage}" + (f" {images}" if images else "")


def _images(approval: Mapping[str, Any]) -> str:
    found: Sequence[str] = [
        f"{c.get('name')}={c.get('image')}"
        for s in approval.get("services") or []
        if isinstance(s, Mapping)
        for c in s.get("containers") or []
        if isinstance(c, Mapping)
    ]
    return " ".join(found)


ShowChange = Callable[[Console, list[dict[str, Any]], bool], None]


def show_answers(console: Console, answers: Sequence[dict[str, Any]], dry_run: bool, show_change: ShowChange) -> None:
    """Show the changes made, and each change that waits for approval (its message, and the id to approve)."""
    made = [answer for answer in answers if not is_approval_required(answer)]
    if made:
        show_change(console, made, dry_run)
    for answer in answers:
        if not is_approval_required(answer):
            continue
        if console.json_output:
            console.json(answer)
        else:
            console.out(str(answer.get("Message")))
            console.out(f"Approve it with: ecs-image-updater approve {answer['approval'].get('id')}")


def follow_through(
    console: Console,
    client: ApiClient,
    answers: Sequence[dict[str, Any]],
    timeout_seconds: float,
    follow: Callable[[Console, ApiClient, list[dict[str, Any]], float], int],
) -> int:
    """--wait: first through every approval the answers wait for, then the deployments (theirs and the others')."""
    made = [answer for answer in answers if not is_approval_required(answer)]
    left = timeout_seconds
    for answer in answers:
        if is_approval_required(answer):
            deployed, code, left = wait_through(console, client, answer, left)
            if deployed is None:
                return code
            made.extend(deployed)
    return follow(console, client, made, left)
