"""A pipeline job whose service requires approval waits for it (continuation tokens), then follows the deployment."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.guard import Guard
from chalicelib.access.identity import Principal
from chalicelib.aws import clients
from chalicelib.deploy import approvals as votes
from chalicelib.entrypoints import wiring
from chalicelib.state import approvals
from chalicelib.state.table import StateTable
from tests.conftest import CodePipeline, EcsDeployments, Workload, records_of
from tests.ecs_answers import serve_recorded
from tests.triggers.test_pipeline import NEW, artifact, job_event, new_job, web_image

STATE_TABLE = "ecs-image-updater-state"
PARAMETERS = {"cluster": "test-cluster", "service": "web", "wait": False}


@pytest.fixture
def run(app_client: Any, lambda_time: None, codepipeline: CodePipeline) -> Any:
    return lambda event: app_client.lambda_.invoke("pipeline_deploy", event)


@pytest.fixture
def definitions() -> str:
    return artifact({"imagedefinitions.json": [{"name": "app", "imageUri": NEW}]})


def require_one(setup_ecs: Any) -> None:
    arn = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]["serviceArn"]
    setup_ecs.tag_resource(resourceArn=arn, tags=[{"key": approvals.APPROVALS_TAG, "value": "1"}])


def decide(decision: str, who: str = "alice") -> dict[str, Any]:
    table = StateTable(clients.dynamodb_client(), STATE_TABLE)
    [approval] = approvals.listed(table)
    guard = Guard(Principal(who, "key"), AccessPolicy())
    return votes.vote(table, approval.id, guard, votes.Vote(decision), wiring.approval_deployer(guard))


def test_the_job_waits_for_the_approval_then_succeeds_with_its_deployment(
    run: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    workload: Workload,
    definitions: str,
    ecs_deployments: EcsDeployments,
) -> None:
    require_one(setup_ecs)
    job = new_job()
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, PARAMETERS, definitions))
    waiting = codepipeline.last()
    assert waiting["executionDetails"]["summary"].startswith("waiting for approval ")
    assert "0 of 1 approvals" in waiting["executionDetails"]["summary"]
    assert web_image(setup_ecs, workload) != NEW
    [record] = records_of("test-cluster", "web")
    assert (record["action"], record["outcome"]) == ("pipeline", "PENDING_APPROVAL")

    codepipeline.expect_success(job, continues=True)
    run(job_event(job, PARAMETERS, definitions, continuation=waiting["continuationToken"]))
    assert codepipeline.last()["executionDetails"]["summary"].startswith("waiting for approval ")

    assert decide("approve")["approval"]["status"] == "DEPLOYED"
    codepipeline.expect_success(job, variables=True)
    run(job_event(job, PARAMETERS, definitions, continuation=waiting["continuationToken"]))
    done = codepipeline.last()
    assert done["outputVariables"]["deploymentId"] == ecs_deployments.last_id
    assert "continuationToken" not in done
    assert web_image(setup_ecs, workload) == NEW


def test_a_rejected_approval_fails_the_job_and_deploys_nothing(
    run: Any, codepipeline: CodePipeline, setup_ecs: Any, workload: Workload, definitions: str
) -> None:
    require_one(setup_ecs)
    job = new_job()
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, PARAMETERS, definitions))
    token = codepipeline.last()["continuationToken"]
    decide("reject")
    codepipeline.expect_failure(job)
    run(job_event(job, PARAMETERS, definitions, continuation=token))
    message = codepipeline.last()["failureDetails"]["message"]
    assert message.endswith("ended REJECTED: rejected by alice; nothing was deployed")
    assert web_image(setup_ecs, workload) != NEW


def test_with_wait_the_job_follows_the_approved_deployment(
    run: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    workload: Workload,
    definitions: str,
    ecs_deployments: EcsDeployments,
) -> None:
    require_one(setup_ecs)
    parameters = {**PARAMETERS, "wait": True}
    job = new_job()
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions))
    token = codepipeline.last()["continuationToken"]
    decide("approve")
    # ECS lists the approved deployment as the PRIMARY one, rolling out.
    service = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]
    serve_recorded(clients.ecs_client(), {**service, "deployments": [ecs_deployments.made[-1]]})
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions, continuation=token))
    following = codepipeline.last()
    assert following["executionDetails"]["summary"] == "waiting for web"  # its deployment, in progress
    assert following["continuationToken"] != token  # the token now names the deployment, not the approval
    assert web_image(setup_ecs, workload) == NEW
