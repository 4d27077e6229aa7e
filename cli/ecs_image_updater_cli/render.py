"""What people read: the answers of the service as short tables and lines (pure functions of the JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ecs_image_updater_cli.console import ARROW

NONE = "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned, two spaces apart, with a header line; no trailing spaces."""
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(widths[index]) for index, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def change_results(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Each service's /update body: the body itself, or the `services` of a fan-out or /apply answer."""
    services = body.get("services")
    if isinstance(services, list):
        return [result for result in services if isinstance(result, Mapping)]
    return [body]


def revision_label(reference: Mapping[str, Any] | None) -> str:
    """`web:7`; `web:new` for the revision a dry run would register; `-` for none."""
    if not reference:
        return NONE
    revision = reference.get("revision")
    return f"{reference.get('family')}:{'new' if revision is None else revision}"


def change_table(bodies: Sequence[Mapping[str, Any]]) -> str:
    """One row per targeted container of each service: revision and image from → to, and the deployment."""
    rows: list[list[str]] = []
    for body in bodies:
        for result in change_results(body):
            rows.extend(_change_rows(result))
    return table(["SERVICE", "REVISION", "CONTAINER", "IMAGE", "DEPLOYMENT"], rows)


def _change_rows(result: Mapping[str, Any]) -> list[list[str]]:
    service = f"{result.get('cluster')}/{result.get('service')}"
    running = revision_label(result.get("taskDefinition"))
    previous = result.get("previousTaskDefinition")
    changed = bool(result.get("changed"))
    revision = f"{revision_label(previous)} {ARROW} {running}" if changed and previous else f"{running} (no change)"
    deployment = result.get("deployment") or {}
    deployment_id = str(deployment.get("id") or NONE)
    containers = [c for c in result.get("containers") or [] if isinstance(c, Mapping)]
    if not containers:
        return [[service, revision, NONE, NONE, deployment_id]]
    rows = []
    for position, container in enumerate(containers):
        before, after = str(container.get("previousImage")), str(container.get("image"))
        image = f"{before} {ARROW} {after}" if before != after else f"{after} (unchanged)"
        first = position == 0
        rows.append(
            [
                service if first else "",
                revision if first else "",
                str(container.get("name")),
                image,
                deployment_id if first else "",
            ]
        )
    return rows


def dry_run_table(bodies: Sequence[Mapping[str, Any]]) -> str:
    """The `diff` entries of each service of a dry run: path, from → to."""
    rows: list[list[str]] = []
    for body in bodies:
        for result in change_results(body):
            service = f"{result.get('cluster')}/{result.get('service')}"
            entries = [entry for entry in result.get("diff") or [] if isinstance(entry, Mapping)]
            if not entries:
                rows.append([service, NONE, "nothing to change"])
            for position, entry in enumerate(entries):
                change = f"{_value(entry.get('from'))} {ARROW} {_value(entry.get('to'))}"
                rows.append([service if position == 0 else "", str(entry.get("path")), change])
    return table(["SERVICE", "PATH", "FROM " + ARROW + " TO"], rows)


def change_summary(bodies: Sequence[Mapping[str, Any]], dry_run: bool) -> str:
    """`2 services changed, 1 already up to date.` (or what a dry run would change)."""
    results = [result for body in bodies for result in change_results(body)]
    changed = sum(1 for result in results if result.get("changed"))
    redeployed = sum(1 for result in results if not result.get("changed") and result.get("deployment"))
    unchanged = len(results) - changed - redeployed
    verb = "would change" if dry_run else "changed"
    parts = [f"{_count(changed, 'service')} {verb}"]
    if redeployed:
        parts.append(f"{redeployed} redeployed")
    if unchanged:
        parts.append(f"{unchanged} already up to date")
    tail = " (dry run: nothing was written)" if dry_run else ""
    return ", ".join(parts) + "." + tail


def status_text(body: Mapping[str, Any]) -> str:
    """A service now: state, tasks, revision, images, its deployments, and the verdict on one if asked."""
    lines = [
        f"{body.get('cluster')}/{body.get('service')}: {body.get('status')}, newest deployment {body.get('outcome')}",
        f"revision  {revision_label(body.get('taskDefinition'))}",
        f"tasks     {_tasks(body)}",
    ]
    if body.get("strategy"):
        lines.append(f"strategy  {body.get('strategy')}")
    newest = body.get("serviceDeployment")
    if isinstance(newest, Mapping):
        lines.append(f"stage     {_service_deployment(newest)}")
    lines += [
        "",
        table(
            ["CONTAINER", "IMAGE"],
            [[str(c.get("name")), str(c.get("image"))] for c in body.get("containers") or [] if isinstance(c, Mapping)],
        ),
    ]
    deployments = [d for d in body.get("deployments") or [] if isinstance(d, Mapping)]
    if deployments:
        rows = [
            [
                str(d.get("id") or NONE),
                str(d.get("status") or NONE),
                str(d.get("rolloutState") or NONE),
                f"{_number(d.get('runningCount'))}/{_number(d.get('desiredCount'))}",
                str(d.get("createdAt") or NONE),
            ]
            for d in deployments
        ]
        lines += ["", table(["DEPLOYMENT", "STATUS", "ROLLOUT", "RUNNING", "CREATED"], rows)]
    verdict = body.get("deployment")
    if isinstance(verdict, Mapping):
        reason = f" ({verdict.get('reason')})" if verdict.get("reason") else ""
        stage = f" at {verdict.get('lifecycleStage')}" if verdict.get("lifecycleStage") else ""
        traffic = _traffic(verdict.get("traffic"))
        lines += ["", f"deployment {verdict.get('id')}: {verdict.get('outcome')}{stage}{traffic}{reason}"]
    return "\n".join(lines)


STOP_REQUESTS = {
    "rollback": "Asked ECS to roll back deployment {id} of {service}.",
    "abort": "Asked ECS to stop deployment {id} of {service} where it is, without rolling back (abort).",
}


def stop_text(body: Mapping[str, Any]) -> str:
    """What a stop asked: `Asked ECS to roll back deployment ecs-svc/1 of prod/web.` and who asked, when."""
    action = str(body.get("action") or "rollback")
    deployment_id, service = body.get("deploymentId"), f"{body.get('cluster')}/{body.get('service')}"
    template = STOP_REQUESTS.get(action)
    asked = f"Asked ECS to {action} deployment {deployment_id} of {service}."
    lines = [template.format(id=deployment_id, service=service) if template else asked]
    facts = []
    if body.get("principal"):
        facts.append(f"requested by {body.get('principal')}")
    if body.get("requestedAt"):
        facts.append(f"at {body.get('requestedAt')}")
    if body.get("serviceDeploymentArn"):
        facts.append(f"ECS service deployment {body.get('serviceDeploymentArn')}")
    if facts:
        lines.append(", ".join(facts))
    return "\n".join(lines)


def history_table(body: Mapping[str, Any]) -> str:
    """Each record: when, action, who (the principal, or for older records the key id; and the source IP),
    images from → to, outcome."""
    rows = []
    for record in body.get("records") or []:
        if not isinstance(record, Mapping):
            continue
        rows.append(
            [
                str(record.get("at") or NONE),
                str(record.get("action") or NONE),
                f"{record.get('principal') or record.get('keyId') or '?'} from {record.get('sourceIp') or '?'}",
                _images(record),
                _outcome(record),
            ]
        )
    if not rows:
        return f"no deployment recorded for {body.get('cluster')}/{body.get('service')}"
    return table(["WHEN", "ACTION", "WHO", "IMAGES", "OUTCOME"], rows)


def _images(record: Mapping[str, Any]) -> str:
    changes = [c for c in record.get("containers") or [] if isinstance(c, Mapping)]
    if not changes:
        return NONE
    shown = []
    for change in changes:
        before, after = change.get("previousImage"), change.get("image")
        moved = f"{before} {ARROW} {after}" if before != after else f"{after} (unchanged)"
        shown.append(f"{change.get('name')}: {moved}" if len(changes) > 1 else moved)
    return "; ".join(shown)


def _service_deployment(newest: Mapping[str, Any]) -> str:
    """`BAKE_TIME (ECS IN_PROGRESS), production traffic 40%, alarms fired: web-5xx`: ECS's newest service deployment."""
    text = f"{newest.get('lifecycleStage') or NONE} (ECS {newest.get('status') or NONE})"
    text += _traffic(newest.get("traffic"))
    alarms = [str(name) for name in newest.get("alarms") or []]
    if alarms:
        text += f", alarms fired: {', '.join(alarms)}"
    if newest.get("reason"):
        text += f": {newest.get('reason')}"
    return text


def _traffic(traffic: Any) -> str:
    """`, production traffic 40%, test traffic 100%` for a linear or canary deployment; else nothing."""
    if not isinstance(traffic, Mapping):
        return ""
    shown = ""
    for kind in ("production", "test"):
        share = traffic.get(kind)
        if isinstance(share, (int, float)) and not isinstance(share, bool):
            shown += f", {kind} traffic {share:g}%"
    return shown


def _outcome(record: Mapping[str, Any]) -> str:
    outcome = str(record.get("outcome") or NONE)
    if record.get("lifecycleStage") and outcome == "IN_PROGRESS":
        outcome += f" at {record.get('lifecycleStage')}"
    error = record.get("error")
    if isinstance(error, Mapping):
        return f"{outcome} {record.get('status')} {error.get('Code')}: {error.get('Message')}"
    return outcome


def _tasks(body: Mapping[str, Any]) -> str:
    running, desired, pending = (_number(body.get(name)) for name in ("runningCount", "desiredCount", "pendingCount"))
    return f"{running} running / {desired} desired ({pending} pending)"


def _number(value: Any) -> str:
    return "?" if value is None else str(value)


def _value(value: Any) -> str:
    if value is None:
        return NONE
    return value if isinstance(value, str) else json.dumps(value)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
