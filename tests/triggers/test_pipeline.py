"""The CodePipeline action: deploy the job's artifact, follow the outcome, report every ending.

S3 (the artifact) and ECS are moto; only CodePipeline's client is stubbed
(botocore's Stubber on a client of its own), since moto does not implement the
job-result calls. The Stubber checks each call against CodePipeline's model and
the parameters expected; a hook on the same client keeps what was sent.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import pytest

from chalicelib.aws import clients
from chalicelib.triggers import pipeline
from tests.conftest import (
    ECR,
    REGION,
    CodePipeline,
    EcsDeployments,
    Workload,
    active_revisions,
    create_service,
    records_of,
    running_task_definition,
)
from tests.ecs_answers import serve_recorded
from tests.faults import AttemptFaults, ServiceFaults, VirtualClock, fail_call
from tests.follow.test_outcomes import ROLLBACK_REASON, deployment_event

BUCKET = "pipeline-artifacts"
NEW = f"{ECR}/web:2.0"
DIGEST = "sha256:" + "ef" * 32


def artifact(files: dict[str, Any], key: str | None = None) -> str:
    """Put a CodePipeline artifact (a zip) in the bucket; returns its key."""
    s3 = clients.session().client("s3", region_name=REGION)
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content if isinstance(content, (str, bytes)) else json.dumps(content))
    key = key or f"pipeline/Source/{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    return key


def job_event(job: str, parameters: Any, key: str | None, continuation: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "actionConfiguration": {
            "configuration": {
                "FunctionName": "ecs-image-updater-dev-pipeline_deploy",
                "UserParameters": parameters if isinstance(parameters, str) else json.dumps(parameters),
            }
        },
        "inputArtifacts": (
            [{"name": "Images", "location": {"type": "S3", "s3Location": {"bucketName": BUCKET, "objectKey": key}}}]
            if key
            else []
        ),
        "outputArtifacts": [],
        "artifactCredentials": {"accessKeyId": "AKIA", "secretAccessKey": "secret", "sessionToken": "token"},
    }
    if continuation:
        data["continuationToken"] = continuation
    return {"CodePipeline.job": {"id": job, "accountId": "123456789012", "data": data}}


@pytest.fixture
def run(app_client: Any, lambda_time: None, codepipeline: CodePipeline) -> Any:
    def invoke(event: dict[str, Any]) -> None:
        app_client.lambda_.invoke("pipeline_deploy", event)

    return invoke


@pytest.fixture
def definitions() -> str:
    return artifact({"imagedefinitions.json": [{"name": "app", "imageUri": NEW}]})


def new_job() -> str:
    return str(uuid.uuid4())


def web_image(setup_ecs: Any, workload: Workload) -> str:
    return str(running_task_definition(setup_ecs, workload)["containerDefinitions"][0]["image"])


def test_without_waiting_the_job_succeeds_once_ecs_accepts_the_deployment(
    run: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    workload: Workload,
    definitions: str,
    ecs_deployments: EcsDeployments,
) -> None:
    job = new_job()
    codepipeline.expect_success(job, variables=True)
    run(job_event(job, {"cluster": "test-cluster", "service": "web", "wait": False}, definitions))

    assert web_image(setup_ecs, workload) == NEW
    sent = codepipeline.last()
    running = running_task_definition(setup_ecs, workload)["taskDefinitionArn"]
    assert sent["outputVariables"] == {"taskDefinitionArn": running, "deploymentId": ecs_deployments.last_id}
    assert "continuationToken" not in sent
    [record] = records_of("test-cluster", "web")
    assert (record["action"], record["keyId"], record["requestId"]) == ("pipeline", "codepipeline", job)
    assert record["principal"] == "aws:codepipeline"


def test_waiting_continues_while_in_progress_and_succeeds_when_completed(
    run: Any,
    app_client: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    workload: Workload,
    definitions: str,
    ecs_deployments: EcsDeployments,
) -> None:
    job = new_job()
    parameters = {"cluster": "test-cluster", "service": "web"}
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions))
    token = codepipeline.last()["continuationToken"]
    deployment = ecs_deployments.last_id

    # Still in progress: ECS lists the deployment as the PRIMARY one, rolling out.
    service = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]
    serve_recorded(clients.ecs_client(), {**service, "deployments": [ecs_deployments.made[-1]]})
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions, continuation=token))
    assert codepipeline.last()["continuationToken"] == token
    assert "waiting for web" in codepipeline.last()["executionDetails"]["summary"]

    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployment))
    codepipeline.expect_success(job, variables=True)
    run(job_event(job, parameters, definitions, continuation=token))
    assert codepipeline.last()["outputVariables"]["deploymentId"] == deployment
    assert codepipeline.last()["outputVariables"]["taskDefinitionArn"].endswith("task-definition/web:2")
    assert len(records_of("test-cluster", "web")) == 1  # continuing deploys nothing more


def test_a_service_named_by_an_old_format_arn_completes_with_one_read_per_check(
    run: Any,
    app_client: Any,
    codepipeline: CodePipeline,
    ecs: Any,
    calls: list[str],
    definitions: str,
    workload: Workload,
    ecs_deployments: EcsDeployments,
) -> None:
    job = new_job()
    parameters = {"cluster": "test-cluster", "service": f"arn:aws:ecs:{REGION}:123456789012:service/web"}  # no cluster
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions))
    token = codepipeline.last()["continuationToken"]
    deployment = ecs_deployments.last_id
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployment))
    del calls[:]

    codepipeline.expect_success(job, variables=True)
    run(job_event(job, parameters, definitions, continuation=token))

    assert codepipeline.last()["outputVariables"]["deploymentId"] == deployment  # ECS answers with the new format
    assert calls == ["DescribeServices"]  # the check and the output variables read the service once


@pytest.mark.parametrize(
    ("ending", "message"),
    [
        ("SERVICE_DEPLOYMENT_FAILED", "failed: tasks failed to start"),
        ("ROLLBACK", "was rolled back: ECS deployment circuit breaker"),
    ],
)
def test_a_failed_or_rolled_back_deployment_fails_the_job(
    run: Any,
    app_client: Any,
    codepipeline: CodePipeline,
    definitions: str,
    workload: Workload,
    ecs_deployments: EcsDeployments,
    ending: str,
    message: str,
) -> None:
    job = new_job()
    parameters = {"cluster": "test-cluster", "service": "web"}
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions))
    token = codepipeline.last()["continuationToken"]
    if ending == "ROLLBACK":
        event = deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/rollback", ROLLBACK_REASON)
    else:
        event = deployment_event(ending, ecs_deployments.last_id, "tasks failed to start")
    app_client.lambda_.invoke("deployment_events", event)

    codepipeline.expect_failure(job)
    run(job_event(job, parameters, definitions, continuation=token))
    failure = codepipeline.last()["failureDetails"]
    assert failure["type"] == "JobFailed"
    assert f"deployment {ecs_deployments.last_id} of service 'web' {message}" in failure["message"]


def test_a_deployment_replaced_meanwhile_fails_the_job_as_superseded(
    run: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    definitions: str,
    workload: Workload,
    ecs_deployments: EcsDeployments,
) -> None:
    job = new_job()
    parameters = {"cluster": "test-cluster", "service": "web"}
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions))
    token = codepipeline.last()["continuationToken"]
    service = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]
    someone_elses = {**ecs_deployments.made[-1], "id": "ecs-svc/someone-else"}
    serve_recorded(clients.ecs_client(), {**service, "deployments": [someone_elses]})

    codepipeline.expect_failure(job)
    run(job_event(job, parameters, definitions, continuation=token))
    assert (
        "replaced by a newer deployment (someone else deployed meanwhile)"
        in codepipeline.last()["failureDetails"]["message"]
    )


def test_waiting_past_the_timeout_fails_the_job(
    run: Any,
    codepipeline: CodePipeline,
    definitions: str,
    workload: Workload,
    ecs_deployments: EcsDeployments,
    setup_ecs: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = new_job()
    parameters = {"cluster": "test-cluster", "service": "web", "timeoutMinutes": 5}
    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions))
    token = codepipeline.last()["continuationToken"]
    service = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]
    serve_recorded(clients.ecs_client(), {**service, "deployments": [ecs_deployments.made[-1]]})
    started = pipeline._read_token(token, 1)[0]
    monkeypatch.setattr(pipeline.time, "time", lambda: started + 5 * 60 + 1)

    codepipeline.expect_failure(job)
    run(job_event(job, parameters, definitions, continuation=token))
    assert (
        "timed out after 5 minutes waiting for the deployment of 'web'"
        in codepipeline.last()["failureDetails"]["message"]
    )


def test_an_image_detail_from_the_ecr_source_deploys_the_digest(
    run: Any, codepipeline: CodePipeline, setup_ecs: Any, workload: Workload
) -> None:
    key = artifact({"imageDetail.json": {"ImageURI": f"{ECR}/web@{DIGEST}", "ImageTags": ["2.0"]}})
    job = new_job()
    codepipeline.expect_success(job, variables=True)
    run(job_event(job, {"cluster": "test-cluster", "service": "web", "wait": False}, key))
    assert web_image(setup_ecs, workload) == f"{ECR}/web@{DIGEST}"  # the container from the same repository


def test_several_services_move_together_with_their_variables_in_order(
    run: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    workload: Workload,
    definitions: str,
    ecs_deployments: EcsDeployments,
) -> None:
    create_service(setup_ecs, "test-cluster", "web-2", workload.running_arn)
    job = new_job()
    codepipeline.expect_success(job, variables=True)
    run(job_event(job, {"cluster": "test-cluster", "services": ["web-2", "web"], "wait": False}, definitions))
    variables = codepipeline.last()["outputVariables"]
    arns = variables["taskDefinitionArns"].split(",")
    assert len(arns) == 2
    assert arns[0] == arns[1]  # one new revision for both: they ran the same one
    assert len(variables["deploymentIds"].split(",")) == 2


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ("not json", "UserParameters is not valid JSON"),
        ("[1]", "UserParameters must be a JSON object"),
        ("", "UserParameters must be JSON such as"),
        ({"service": "web"}, "UserParameters: 'cluster' is required"),
        ({"cluster": "test-cluster", "service": "web", "services": ["a", "b"]}, "not both"),
        ({"cluster": "test-cluster", "service": "web", "wait": "yes"}, "'wait' must be true or false"),
        ({"cluster": "test-cluster", "service": "web", "timeoutMinutes": 0}, "'timeoutMinutes' must be a whole number"),
        ({"cluster": "test-cluster", "service": "web", "region": "x"}, "unknown field(s) 'region'"),
        ({"cluster": "test-cluster", "service": "web", "container": "a b"}, "'container' must be a container name"),
    ],
)
def test_bad_parameters_fail_the_job_as_configuration_and_change_nothing(
    run: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    workload: Workload,
    definitions: str,
    parameters: Any,
    message: str,
) -> None:
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, parameters, definitions))
    failure = codepipeline.last()["failureDetails"]
    assert failure["type"] == "ConfigurationError"
    assert message in failure["message"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"README": "x"}, "holds neither imagedefinitions.json nor imageDetail.json (it holds README)"),
        ({"imagedefinitions.json": "{not json"}, "imagedefinitions.json is not valid JSON"),
        ({"imagedefinitions.json": {"name": "app"}}, "must be a JSON array"),
        ({"imagedefinitions.json": [{"name": "app", "imageUri": f"{ECR}/web"}]}, "must carry a tag or a digest"),
        ({"imagedefinitions.json": [{"name": "ghost", "imageUri": NEW}]}, "'ghost' is not in task definition"),
        ({"imageDetail.json": {"ImageTags": ["1"]}}, "imageDetail.json has no ImageURI"),
        ({"imageDetail.json": {"ImageURI": "UPPER/case@" + DIGEST}}, "is not an image reference"),
    ],
)
def test_a_bad_artifact_fails_the_job_and_changes_nothing(
    run: Any, codepipeline: CodePipeline, setup_ecs: Any, workload: Workload, files: dict[str, Any], message: str
) -> None:
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, artifact(files)))
    assert message in codepipeline.last()["failureDetails"]["message"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_a_missing_or_unreadable_artifact_fails_the_job(
    run: Any, codepipeline: CodePipeline, workload: Workload, definitions: str
) -> None:
    for key, message in [
        ("pipeline/Source/gone", "does not exist"),
        (artifact({}, key="pipeline/Source/empty-zip"), "holds neither"),
    ]:
        job = new_job()
        codepipeline.expect_failure(job)
        run(job_event(job, {"cluster": "test-cluster", "service": "web"}, key))
        assert message in codepipeline.last()["failureDetails"]["message"]
    s3 = clients.session().client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="not-a-zip", Body=b"plain text")
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, "not-a-zip"))
    assert codepipeline.last()["failureDetails"]["message"] == "the input artifact is not a zip file"
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, None))
    assert "exactly one input artifact, not 0" in codepipeline.last()["failureDetails"]["message"]


def test_a_failed_deploy_fails_the_job_and_leaves_the_service_as_it_was(
    run: Any, ecs: Any, codepipeline: CodePipeline, setup_ecs: Any, workload: Workload, definitions: str
) -> None:
    ServiceFaults(ecs).fail("UpdateService", "web", "AccessDeniedException")
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, definitions))
    failure = codepipeline.last()["failureDetails"]
    assert (failure["type"], "UpdateService failed: AccessDeniedException" in failure["message"]) == ("JobFailed", True)
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_the_allowlists_fail_the_job_as_a_permission_error(
    run: Any, codepipeline: CodePipeline, workload: Workload, definitions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_SERVICES", "api")
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, definitions))
    assert codepipeline.last()["failureDetails"]["type"] == "PermissionError"


def test_the_permissions_file_applies_to_codepipeline_as_aws_codepipeline(
    run: Any,
    codepipeline: CodePipeline,
    workload: Workload,
    definitions: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text("rules:\n  - principals: [aws:codepipeline]\n    actions: [update]\n    clusters: [staging]\n")
    monkeypatch.setenv("PERMISSIONS_FILE", str(rules))
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, definitions))
    failure = codepipeline.last()["failureDetails"]
    assert failure["type"] == "PermissionError"
    assert "principal aws:codepipeline may not update cluster test-cluster service web" in failure["message"]
    assert records_of("test-cluster", "web") == []


def test_a_bug_is_still_reported_and_the_function_returns(
    run: Any, ecs: Any, codepipeline: CodePipeline, workload: Workload, definitions: str
) -> None:
    fail_call(ecs, "DescribeServices", lambda: RuntimeError("secret internals"))
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, definitions))
    message = codepipeline.last()["failureDetails"]["message"]
    assert "internal error" in message
    assert "secret" not in message


def test_a_token_not_made_here_fails_the_job(run: Any, codepipeline: CodePipeline, workload: Workload) -> None:
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, None, continuation="forged"))
    assert "continuation token was not made by this function" in codepipeline.last()["failureDetails"]["message"]


def test_when_codepipeline_cannot_be_told_the_retry_tells_what_was_done_without_deploying_again(
    run: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    workload: Workload,
    definitions: str,
    ecs_deployments: EcsDeployments,
    calls: list[str],
) -> None:
    job = new_job()
    parameters = {"cluster": "test-cluster", "service": "web"}
    codepipeline.stubber.add_client_error("put_job_success_result", "ThrottlingException", "slow down")
    with pytest.raises(Exception, match="PutJobSuccessResult"):
        run(job_event(job, parameters, definitions))  # deployed, but CodePipeline was not told: Lambda runs it again
    deployment = ecs_deployments.last_id
    updates = calls.count("UpdateService")
    service = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]
    serve_recorded(clients.ecs_client(), {**service, "deployments": [ecs_deployments.made[-1]]})  # still rolling out

    codepipeline.expect_success(job, continues=True)
    run(job_event(job, parameters, definitions))  # the same event again, no continuation token

    assert calls.count("UpdateService") == updates  # nothing deployed twice
    token = codepipeline.last()["continuationToken"]
    assert pipeline._read_token(token, 1)[1] == [deployment]  # and it waits for the first run's deployment
    assert len(records_of("test-cluster", "web")) == 1


def test_a_failure_codepipeline_was_not_told_of_is_told_again_as_it_was(
    run: Any, codepipeline: CodePipeline, setup_ecs: Any, workload: Workload
) -> None:
    key = artifact({"README": "no images here"})
    job = new_job()
    codepipeline.stubber.add_client_error("put_job_failure_result", "ThrottlingException", "slow down")
    with pytest.raises(Exception, match="PutJobFailureResult"):
        run(job_event(job, {"cluster": "test-cluster", "service": "web"}, key))
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web"}, key))
    failure = codepipeline.last()["failureDetails"]
    assert failure["type"] == "ConfigurationError"
    assert "holds neither imagedefinitions.json nor imageDetail.json" in failure["message"]


def test_an_event_that_is_not_a_job_reports_nothing(app_client: Any, codepipeline: CodePipeline) -> None:
    app_client.lambda_.invoke("pipeline_deploy", {"not": "a job"})
    assert codepipeline.sent == []


def test_a_lock_meeting_another_transaction_waits_and_the_job_still_deploys(
    run: Any,
    codepipeline: CodePipeline,
    setup_ecs: Any,
    workload: Workload,
    definitions: str,
    virtual_clock: VirtualClock,
) -> None:
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")
    faults.conflict("TransactWriteItems", attempts={1})
    job = new_job()
    codepipeline.expect_success(job, variables=True)
    run(job_event(job, {"cluster": "test-cluster", "service": "web", "wait": False}, definitions))
    assert web_image(setup_ecs, workload) == NEW
    # What the job did before; the lock (with the freeze gates), twice.
    assert faults.attempts[:3] == ["GetItem", "TransactWriteItems", "TransactWriteItems"]


def test_a_frozen_service_fails_the_job_with_the_freeze_and_deploys_nothing(
    run: Any, codepipeline: CodePipeline, setup_ecs: Any, workload: Workload, definitions: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from chalicelib.aws import accounts
    from chalicelib.core.windows import Scope
    from chalicelib.state import freezes
    from chalicelib.state.table import StateTable

    table = StateTable(clients.dynamodb_client(), "ecs-image-updater-state")
    until = datetime.now(UTC) + timedelta(hours=1)
    made = freezes.create(table, Scope(("test-cluster",)), accounts.home(), until, "launch", "wait", "someone")
    job = new_job()
    codepipeline.expect_failure(job)
    run(job_event(job, {"cluster": "test-cluster", "service": "web", "wait": False}, definitions))
    failure = codepipeline.last()["failureDetails"]
    assert f"service 'test-cluster/web' is frozen by freeze:{made.id} (launch)" in failure["message"]
    assert web_image(setup_ecs, workload) != NEW
