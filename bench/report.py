"""The benchmark's one table, for the terminal and for bench/results.md."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version

from bench.contenders import CONTENDER_KEYS, ECS_DEPLOY_CLI, OURS_DIRECT, OURS_HTTP
from bench.fanout import render_fan_out
from bench.fidelity import FidelityReport, bookkeeping_purpose
from bench.hooks import AwsCall
from bench.latency import CHANGED, NO_OP, LatencySummary
from bench.measurements import BenchResults, ContenderFindings

OPERATION_ABBREVIATIONS = {
    "DescribeServices": "DS",
    "DescribeTaskDefinition": "DTD",
    "RegisterTaskDefinition": "RTD",
    "UpdateService": "US",
    "DeregisterTaskDefinition": "DeregTD",
    "PutItem": "Put",
    "DeleteItem": "Del",
    "TransactWriteItems": "TxW",
}
VERSIONED_PACKAGES = ("boto3", "botocore", "moto", "chalice", "ecs-deploy")
OURS_TIMED = {OURS_DIRECT: "direct", OURS_HTTP: "HTTP"}
MISSING = "n/a"

Row = list[str]


def render_table(results: BenchResults, theirs: str) -> str:
    """One Markdown table: calls, latency, fidelity, cold start; columns are the contenders."""
    labels = [results.findings[key].label for key in CONTENDER_KEYS]
    header = ["measure", *labels, "ours/theirs, or note"]
    rows = [header, *_call_rows(results), *_latency_rows(results, theirs), *_fidelity_rows(results)]
    rows += _cold_start_rows(results)
    return _markdown(rows)


def render_results_file(results: BenchResults, theirs: str, command: str) -> str:
    """bench/results.md: when, with what, the table, how it was measured and what it shows."""
    versions = ", ".join(f"{name} {version(name)}" for name in VERSIONED_PACKAGES)
    settings = results.settings
    return "\n".join(
        [
            "# Benchmark: POST /update against ecs-deploy",
            "",
            f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}` ({results.seconds:.0f} s).",
            f"Python {platform.python_version()}, {versions}; {platform.system()} on {os.cpu_count()} CPUs.",
            f"{settings.iterations} changed and {settings.iterations} no-op updates per contender with no network "
            f"delay, {settings.network_iterations} of each with a simulated {settings.round_trip_ms:g} ms round "
            f"trip per AWS call; cold start: median of {settings.cold_start_runs} fresh interpreters each.",
            "",
            render_table(results, theirs),
            "",
            "Operations: " + ", ".join(f"{short} = {name}" for name, short in OPERATION_ABBREVIATIONS.items()) + ".",
            "ours/theirs compares with `ecs-deploy: DeployAction`; below 1 means ours is faster.",
            "",
            "## What it shows",
            "",
            *[f"- {finding}" for finding in findings_in_words(results, theirs)],
            "",
            "## How it was measured",
            "",
            *[f"- {line}" for line in METHOD],
            "",
            *(render_fan_out(results.fan_out) if results.fan_out else []),
        ]
    )


METHOD = [
    "One in-process moto backend (`mock_aws`), one cluster, one service per contender, each starting on its own "
    "identical revision of the test suite's rich Fargate task definition (`tests/conftest.py`): two containers, "
    "environment, secrets, tags, port mappings, health checks, volumes, proxy configuration and more. Every "
    "contender changes the image of the `app` container and does not wait for the rollout.",
    "`ours: update_image` calls `chalicelib.deploy.update.update_image` with the service's own ECS client "
    "(its timeouts, retries and time budget). `ours: POST /update` goes through the whole app with "
    "`chalice.test.Client` on the dev stage (key check, JSON parsing, validation, allowlists, the per-service "
    "DynamoDB lock and the deployment record when the stage sets STATE_TABLE, audit tags, response, request log "
    "line written to /dev/null).",
    "`ecs-deploy: DeployAction` is ecs-deploy's Python API doing what its `deploy` command does up to UpdateService: "
    "`DeployAction(EcsClient(...))`, `get_current_task_definition`, `set_images`, `update_task_definition`, "
    "`deploy`. `ecs-deploy: deploy --timeout -1` is the command itself, in process (click's `CliRunner`), "
    "fire-and-forget and otherwise with its defaults; it is counted, not timed.",
    "AWS calls are counted by operation name with a `before-parameter-build` hook on every client a contender "
    "uses (once per call, not per retry). The simulated round trip makes every attempt last at least that long: "
    "a `before-send` hook notes when it is sent, and once moto has answered a `needs-retry` hook waits for what "
    "is left, so moto's own work counts inside the round trip, as a server's does.",
    "Latency is wall time per update; contenders take turns (A, B, C, A, B, C ...) so machine noise hits all "
    "alike. Each round is one changed update per contender, then one no-op update (the same tag again). Client "
    "construction is outside the timing on both sides; the cold start row covers it for ours. After each round, "
    "untimed, the deployment records POST /update wrote are deleted: moto's TransactWriteItems copies the whole "
    "table to be able to undo it, so in moto its cost grows with every record kept (DynamoDB's does not).",
    "Fidelity compares DescribeTaskDefinition (with tags) of the revision the service ran before the first change "
    "with the one it runs after, minus the fields ECS sets itself, with `chalicelib.core.taskdef.diff`. The tags ours "
    "adds on purpose are reported as bookkeeping, not as changes: `previous-task-definition` (for `/rollback`) "
    "and, through POST /update, the audit tags of `chalicelib.access.audit`.",
    "Cold start: wall time of `python -c '<statement>'` in fresh processes (one unmeasured run first, so bytecode "
    "is cached), taking turns. The zip is `deployment.zip` from `chalice package --stage dev`.",
]


def findings_in_words(results: BenchResults, theirs: str) -> list[str]:
    """Sentences drawn from the numbers, so results.md says only what this run measured."""
    findings = results.findings
    reference = findings[theirs]
    sentences = [f"Calls per update: {_calls_sentence(findings[key])}" for key in CONTENDER_KEYS if key in findings]
    if "RegisterTaskDefinition" in reference.no_op_calls:
        sentences.append(
            "ecs-deploy has no no-op: asked for the image a service already runs, it registers another identical "
            "revision and starts a deployment."
        )
    app_others = findings[OURS_HTTP].other_than_ecs if OURS_HTTP in findings else []
    if app_others:
        names = ", ".join(dict.fromkeys(call.operation for call in app_others))
        sentences.append(
            f"POST /update's calls beyond the domain call's ({names}) are the app's per-service DynamoDB lock: "
            "PutItem takes it, and one TransactWriteItems lets it go and writes the deployment record, so the "
            "record costs no call of its own (the dev stage sets STATE_TABLE); with a real round trip each call "
            "costs about the same, so they set the HTTP column's extra time."
        )
    cli = findings.get(ECS_DEPLOY_CLI)
    if cli and "DeregisterTaskDefinition" in cli.change_calls:
        sentences.append(
            "ecs-deploy's `deploy` command also reads the service again and, by default (`--deregister`), "
            "deregisters the revision it replaced, so the previous revision is INACTIVE after every deploy."
        )
    for key in CONTENDER_KEYS:
        sentences.append(f"Fidelity, {findings[key].label}: {_fidelity_sentence(findings[key].fidelity)}")
    for phase, by_kind in results.latency.items():
        ratios = [
            f"{_ratio(by_kind[CHANGED][key].median_ms, by_kind[CHANGED][theirs].median_ms)} ({OURS_TIMED[key]})"
            for key in OURS_TIMED
        ]
        sentences.append(
            f"Median changed update, {phase}: ours/theirs {', '.join(ratios)}; "
            f"theirs takes {by_kind[CHANGED][theirs].median_ms:.1f} ms."
        )
    if {"import app", "import boto3"} <= results.import_ms.keys():
        extra = results.import_ms["import app"] - results.import_ms["import boto3"]
        sentences.append(f"Importing the app costs {extra:.0f} ms more than importing boto3 alone.")
    return sentences


def _call_rows(results: BenchResults) -> list[Row]:
    findings = [results.findings[key] for key in CONTENDER_KEYS]
    return [
        ["AWS calls, changed update", *[_count(f.change_calls) for f in findings], ""],
        ["  which", *[_operations(f.change_calls) for f in findings], ""],
        ["AWS calls, no-op update", *[_count(f.no_op_calls) for f in findings], ""],
        ["  which", *[_operations(f.no_op_calls) for f in findings], ""],
    ]


def _latency_rows(results: BenchResults, theirs: str) -> list[Row]:
    rows: list[Row] = []
    statistics: list[tuple[str, Callable[[LatencySummary], float]]] = [
        ("median", lambda s: s.median_ms),
        ("p95", lambda s: s.p95_ms),
    ]
    for phase, by_kind in results.latency.items():
        for kind in (CHANGED, NO_OP):
            summaries = by_kind[kind]
            for name, statistic in statistics:
                cells = [f"{statistic(summaries[key]):.1f}" if key in summaries else MISSING for key in CONTENDER_KEYS]
                ratios = ", ".join(
                    f"{_ratio(statistic(summaries[key]), statistic(summaries[theirs]))} {OURS_TIMED[key]}"
                    for key in OURS_TIMED
                )
                samples = summaries[theirs].samples
                rows.append([f"ms per {kind} update, {phase}, {name} (n={samples})", *cells, ratios])
    return rows


def _fidelity_rows(results: BenchResults) -> list[Row]:
    reports = [results.findings[key].fidelity for key in CONTENDER_KEYS]
    return [
        ["image of `app` changed", *["yes" if r.image_changes else "**NO**" for r in reports], ""],
        ["fields lost", *[_paths(r.lost) for r in reports], ""],
        ["fields added or changed besides the image", *[_additions(r) for r in reports], ""],
    ]


def _cold_start_rows(results: BenchResults) -> list[Row]:
    rows: list[Row] = []
    imports = results.import_ms
    if imports:
        ours = f"`import app` {imports['import app']:.0f}"
        theirs = f"`import ecs_deploy.cli` {imports['import ecs_deploy.cli']:.0f}"
        note = f"`import boto3` alone {imports['import boto3']:.0f}; `python -c pass` {imports['python -c pass']:.0f}"
        rows.append(["cold start, fresh interpreter, median ms", ours, ours, theirs, theirs, note])
    if results.zip_bytes is not None:
        size = f"{results.zip_bytes / 1024:.1f} KiB"
        rows.append(
            ["deployment zip (`chalice package`)", size, size, MISSING, MISSING, "ecs-deploy runs in the pipeline"]
        )
    return rows


def _calls_sentence(found: ContenderFindings) -> str:
    return (
        f"{found.label} makes {len(found.change_calls)} for a change ({_operations(found.change_calls)}) and "
        f"{len(found.no_op_calls)} for a no-op ({_operations(found.no_op_calls) or 'none'})."
    )


def _fidelity_sentence(report: FidelityReport) -> str:
    parts = ["the image changed" if report.image_changes else "the image did NOT change"]
    parts.append(f"lost {_paths(report.lost)}" if report.lost else "no field lost")
    if report.added or report.altered:
        parts.append(f"also added or changed {_paths([*report.added, *report.altered])}")
    if report.bookkeeping:
        purposes = ", ".join(f"{c.path.removeprefix('tags.')} ({bookkeeping_purpose(c)})" for c in report.bookkeeping)
        parts.append(f"added the bookkeeping tags {purposes} on purpose")
    return "; ".join(parts) + "."


def _additions(report: FidelityReport) -> str:
    """Bookkeeping tags grouped by purpose (`tags previous-task-definition (rollback)`), then anything else."""
    by_purpose: dict[str, list[str]] = {}
    for change in report.bookkeeping:
        by_purpose.setdefault(bookkeeping_purpose(change), []).append(change.path.removeprefix("tags."))
    notes = [f"tags {', '.join(tags)} ({purpose})" for purpose, tags in by_purpose.items()]
    notes += [f"**{change.path}**" for change in [*report.added, *report.altered]]
    return "; ".join(notes) or "none"


def _paths(changes: Sequence[object]) -> str:
    return ", ".join(getattr(change, "path", str(change)) for change in changes) or "none"


def _operations(calls: Sequence[AwsCall]) -> str:
    return " ".join(OPERATION_ABBREVIATIONS.get(call.operation, call.operation) for call in calls)


def _count(calls: Sequence[AwsCall]) -> str:
    """`4`, or `6 (4 ECS + 2 dynamodb)` when some calls go to other services."""
    others = [call.service for call in calls if call.service != "ecs"]
    if not others:
        return str(len(calls))
    named = " + ".join(f"{others.count(service)} {service}" for service in dict.fromkeys(others))
    return f"{len(calls)} ({len(calls) - len(others)} ECS + {named})"


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else MISSING


def _markdown(rows: list[Row]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines = [f"| {line} |" for line in lines]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)
