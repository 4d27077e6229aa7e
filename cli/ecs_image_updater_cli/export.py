"""`export`: what a service runs now, as a description file to commit (GET .../description)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from ecs_image_updater_cli.api import ApiClient, path_of
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.exits import ExitCode, RefusedError, UnavailableError


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `export`."""
    parser = commands.add_parser(
        "export",
        parents=[common],
        help="write what a service runs as a description file",
        description="Write what a service runs now as a description file (YAML; JSON for a -o FILE ending .json).",
        epilog="example: ecs-image-updater export prod web -o deploy/prod/web.yaml",
    )
    parser.add_argument("cluster", help="cluster name or ARN")
    parser.add_argument("service", help="service name or ARN")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(run=run)


def description_text(description: dict[str, Any], as_json: bool) -> str:
    """The description as YAML (cluster, service, containers, in that order), or as indented JSON."""
    ordered = {name: description.get(name) for name in ("cluster", "service", "containers")}
    if as_json:
        return json.dumps(ordered, indent=2) + "\n"
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False, allow_unicode=True)


def run(args: argparse.Namespace, client: ApiClient, console: Console) -> int:
    """GET the description and write it to stdout or FILE."""
    description = client.get(path_of("services", args.cluster, args.service, "description"))
    if not isinstance(description.get("containers"), dict):
        raise UnavailableError("the service's description has no 'containers' map")
    if args.output is None:
        if console.json_output:
            console.json(description)
        else:
            console.out(description_text(description, as_json=False).rstrip("\n"))
        return ExitCode.DONE
    target = Path(args.output)
    try:
        target.write_text(description_text(description, as_json=target.suffix.lower() == ".json"), encoding="utf-8")
    except OSError as unwritable:
        raise RefusedError(f"cannot write {target}: {unwritable.strerror}") from None
    if console.json_output:
        console.json(description)
    else:
        count = len(description["containers"])
        console.out(f"Wrote {target}: {description.get('cluster')}/{description.get('service')}, {count} container(s).")
    return ExitCode.DONE
