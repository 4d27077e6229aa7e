"""Gather what a caller needs to reach the deployed service into one local file.

This writes `.api.env` (readable by you only) with the invoke URL, the API
key's value, and the cluster and service from the workload stack:

    API_URL=https://abc123defg.execute-api.eu-west-1.amazonaws.com/api
    API_KEY=...
    CLUSTER=test-cluster
    SERVICE=web

After `make deploy` (the whole service as one stack), `--stack NAME` reads the
invoke URL and the key's id from that stack's outputs; the workload stack is
optional then (without it, CLUSTER and SERVICE are left out). After `chalice
deploy` and the two stacks in infra/, the URL comes from Chalice's deployed
state and the key's id from the api-access stack.

Usage: python scripts/aws_connection.py --stack NAME [--workload-stack NAME]
       python scripts/aws_connection.py [--stage dev] [--access-stack NAME] [--workload-stack NAME]
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
from botocore.exceptions import ClientError

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = PROJECT_DIR / ".api.env"
# The outputs of the one stack (`make deploy`) this reads: Chalice's EndpointURL and
# infra/service.yaml's ApiKeyId.
URL_OUTPUT = "EndpointURL"
KEY_ID_OUTPUT = "ApiKeyId"
SERVICE_STACK_OUTPUTS = (URL_OUTPUT, KEY_ID_OUTPUT)


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


def stack_outputs_if_it_exists(cloudformation: Any, stack: str) -> dict[str, str] | None:
    """A stack's outputs by key, or None when there is no such stack."""
    try:
        return stack_outputs(cloudformation, stack)
    except ClientError as error:
        missing = error.response.get("Error", {}).get("Code") == "ValidationError" and "does not exist" in str(error)
        if missing:
            return None
        raise


def api_key_value(session: boto3.session.Session, key_id: str) -> str:
    """The value of the API key with this id."""
    return str(session.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])


def gather(
    session: boto3.session.Session, project_dir: Path, stage: str, access_stack: str, workload_stack: str
) -> dict[str, str]:
    """API_URL, API_KEY, CLUSTER and SERVICE for the deployed service."""
    cloudformation = session.client("cloudformation")
    key_id = stack_outputs(cloudformation, access_stack)["ApiKeyId"]
    workload = stack_outputs(cloudformation, workload_stack)
    return {
        "API_URL": invoke_url(project_dir, stage),
        "API_KEY": api_key_value(session, key_id),
        "CLUSTER": workload["ClusterName"],
        "SERVICE": workload["ServiceName"],
    }


def gather_from_stack(session: boto3.session.Session, stack: str, workload_stack: str) -> dict[str, str]:
    """API_URL and API_KEY from the service's one stack; CLUSTER and SERVICE if the workload stack exists."""
    cloudformation = session.client("cloudformation")
    outputs = stack_outputs_if_it_exists(cloudformation, stack)
    if outputs is None:
        raise SystemExit(f"stack {stack} does not exist: run `make deploy` first")
    missing = [name for name in SERVICE_STACK_OUTPUTS if name not in outputs]
    if missing:
        raise SystemExit(f"stack {stack} has no output {', '.join(missing)}: is it the stack `make deploy` made?")
    values = {
        "API_URL": outputs[URL_OUTPUT].rstrip("/"),
        "API_KEY": api_key_value(session, outputs[KEY_ID_OUTPUT]),
    }
    workload = stack_outputs_if_it_exists(cloudformation, workload_stack)
    if workload is not None:
        values["CLUSTER"] = workload["ClusterName"]
        values["SERVICE"] = workload["ServiceName"]
    return values


def write_env_file(values: dict[str, str], path: Path) -> None:
    """Write KEY=value lines, readable by the owner only (the file holds the API key)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as env_file:
        env_file.writelines(f"{key}={value}\n" for key, value in values.items())
    path.chmod(0o600)


def main() -> int:
    """Gather the connection details and write them to the output file."""
    parser = argparse.ArgumentParser(description="Write the deployed service's URL, key, cluster and service.")
    parser.add_argument("--stack", help="the service's one stack (`make deploy`); without it, `chalice deploy`'s state")
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--access-stack", default="ecs-image-updater-access")
    parser.add_argument("--workload-stack", default="ecs-image-updater-workload")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--rest-api-id", action="store_true", help="only print the REST API id and exit")
    args = parser.parse_args()
    if args.rest_api_id:
        print(deployed_rest_api(PROJECT_DIR, args.stage)["rest_api_id"])
        return 0
    session = boto3.session.Session()
    if args.stack:
        values = gather_from_stack(session, args.stack, args.workload_stack)
    else:
        values = gather(session, PROJECT_DIR, args.stage, args.access_stack, args.workload_stack)
    write_env_file(values, args.output)
    shown = ", ".join(f"{name}={value}" for name, value in values.items() if name != "API_KEY")
    print(f"Wrote {args.output} ({shown})")
    if "CLUSTER" not in values:
        print(f"No stack {args.workload_stack}: CLUSTER and SERVICE are left out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
