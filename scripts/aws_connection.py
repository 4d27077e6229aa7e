"""Gather what a caller needs to reach the deployed service into one local file.

After `chalice deploy` and the two stacks in infra/, this writes `.api.env`
(readable by you only) with the invoke URL from Chalice's deployed state, the
API key's value, and the cluster and service from the workload stack:

    API_URL=https://abc123defg.execute-api.eu-west-1.amazonaws.com/api
    API_KEY=...
    CLUSTER=test-cluster
    SERVICE=web

Usage: python scripts/aws_connection.py [--stage dev] [--access-stack NAME] [--workload-stack NAME]
       python scripts/aws_connection.py --rest-api-id     (prints the id for the api-access stack)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import boto3

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = PROJECT_DIR / ".api.env"


def deployed_rest_api(project_dir: Path, stage: str) -> dict[str, Any]:
    """The REST API resource in Chalice's deployed state, `.chalice/deployed/<stage>.json`."""
    deployed = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not deployed.exists():
        raise SystemExit(f"{deployed} does not exist: run `chalice deploy --stage {stage}` first")
    for resource in json.loads(deployed.read_text()).get("resources", []):
        if resource.get("resource_type") == "rest_api":
            return dict(resource)
    raise SystemExit(f"{deployed} names no REST API")


def invoke_url(project_dir: Path, stage: str) -> str:
    """The REST API's invoke URL, without a trailing slash."""
    return str(deployed_rest_api(project_dir, stage)["rest_api_url"]).rstrip("/")


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """A stack's outputs by key."""
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}


def gather(
    session: boto3.session.Session, project_dir: Path, stage: str, access_stack: str, workload_stack: str
) -> dict[str, str]:
    """API_URL, API_KEY, CLUSTER and SERVICE for the deployed service."""
    cloudformation = session.client("cloudformation")
    key_id = stack_outputs(cloudformation, access_stack)["ApiKeyId"]
    key = session.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)
    workload = stack_outputs(cloudformation, workload_stack)
    return {
        "API_URL": invoke_url(project_dir, stage),
        "API_KEY": key["value"],
        "CLUSTER": workload["ClusterName"],
        "SERVICE": workload["ServiceName"],
    }


def write_env_file(values: dict[str, str], path: Path) -> None:
    """Write KEY=value lines, readable by the owner only (the file holds the API key)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as env_file:
        env_file.writelines(f"{key}={value}\n" for key, value in values.items())
    path.chmod(0o600)


def main() -> int:
    """Gather the connection details and write them to the output file."""
    parser = argparse.ArgumentParser(description="Write the deployed service's URL, key, cluster and service.")
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--access-stack", default="ecs-image-updater-access")
    parser.add_argument("--workload-stack", default="ecs-image-updater-workload")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--rest-api-id", action="store_true", help="only print the REST API id and exit")
    args = parser.parse_args()
    if args.rest_api_id:
        print(deployed_rest_api(PROJECT_DIR, args.stage)["rest_api_id"])
        return 0
    values = gather(boto3.session.Session(), PROJECT_DIR, args.stage, args.access_stack, args.workload_stack)
    write_env_file(values, args.output)
    print(
        f"Wrote {args.output} (API_URL={values['API_URL']}, CLUSTER={values['CLUSTER']}, SERVICE={values['SERVICE']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
