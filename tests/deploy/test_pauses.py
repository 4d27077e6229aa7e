"""ECS pause hooks: a deployment waiting at a PAUSE lifecycle hook opens an approval; the N-th approval continues
it, a reject rolls it back.

moto implements neither ECS's service deployment API nor ContinueServiceDeployment, and emits no "ECS Hook State
Change" event: the service deployments (with their `lifecycleHookDetails`) and ContinueServiceDeployment's answers
are recorded ones in the shapes ECS documents, served on the service's own ECS client by
tests.ecs_answers.ServiceDeploymentAnswers, and the events are built here (tests.ecs_answers.hook_event).
Everything else (DynamoDB, SNS, the service's ECS description and tags) is moto.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from botocore.awsrequest import AWSResponse

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.guard import Guard
from chalicelib.access.identity import Principal
from chalicelib.aws import clients
from chalicelib.core.errors import AwsCallError
from chalicelib.deploy import approvals as votes
from chalicelib.deploy import pauses
from chalicelib.entrypoints import wiring
from chalicelib.state import approvals
from chalicelib.state.approvals import Transition
from tests.conftest import API_KEY, ECR, PROJECT_DIR, EcsDeployments, Gateway, Subscriber, Workload, records_of
from tests.deploy.test_approvals import require, table
from tests.ecs_answers import ServiceDeploymentAnswers, deployment_arn, hook_event, pause_hook, service_deployment
from tests.faults import client_error
from tests.follow.test_outcomes import deployment_event

UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1", "container": "app"}
STAGE = "POST_TEST_TRAFFIC_SHIFT"


class Paused:
    """web updated to 1.1 by `ci` through the app, its service deployment waiting at a PAUSE hook."""

    def __init__(self, api: Any, ecs: Any, ecs_deployments: EcsDeployments, app_client: Any) -> None:
        answer = api("POST", "/update", body=UPDATE, key_id="ci")
        assert answer.status == 200, answer.json
        made = ecs_deployments.made[-1]
        self.at: datetime = made["createdAt"]
        self.hook = pause_hook("hook-1", datetime.now(UTC) + timedelta(hours=2), timeout="ROLLBACK")
        deployment = service_deployment(
            "paused", "IN_PROGRESS", 0, 0, created=self.at, stage=STAGE, strategy="BLUE_GREEN", hooks=[self.hook]
        )
        deployment["_revision"] = made["taskDefinition"]
        self.deployment = deployment
        self.answers = ServiceDeploymentAnswers(ecs.meta.events, [deployment])
        self.app_client = app_client

    def event(self, **given: Any) -> None:
        """Deliver ECS's HOOK_AWAITING_ACTION for the hook (the service deployment and hook named by default)."""
        fields = {"service_deployment_arn": deployment_arn("paused"), "hook_id": "hook-1", **given}
        self.app_client.lambda_.invoke("deployment_events", hook_event(**fields))

    def continued(self) -> list[dict[str, Any]]:
        """The ContinueServiceDeployment calls made."""
        return [params for operation, params in self.answers.calls if operation == "ContinueServiceDeployment"]


@pytest.fixture
def api(gateway: Gateway, app_client: Any) -> Any:
    """The routes as API Gateway runs them, with the key the event functions' test client has the app check."""

    def call(method: str, path: str, **given: Any) -> Any:
        return gateway(method, path, headers={"x-api-key": API_KEY}, **given)

    return call


@pytest.fixture
def paused(api: Any, ecs: Any, ecs_deployments: EcsDeployments, app_client: Any, workload: Workload) -> Paused:
    return Paused(api, ecs, ecs_deployments, app_client)


def open_pause(api: Any) -> dict[str, Any]:
    [approval] = api("GET", "/approvals", key_id="alice").json["approvals"]
    return dict(approval)


def own_record() -> dict[str, Any]:
    [record] = [r for r in records_of("test-cluster", "web") if r.get("deploymentId")]
    return record


def test_the_hook_event_opens_a_pause_approval_with_the_hooks_expiry_and_records_the_pause(
    paused: Paused, api: Any, subscriber: Subscriber
) -> None:
    paused.event()
    approval = open_pause(api)
    assert (approval["kind"], approval["status"], approval["required"]) == ("pause", "PENDING", 1)
    assert approval["id"] == pauses.approval_id(deployment_arn("paused"), "hook-1")
    assert approval["requestedBy"] == "ci"  # the deployment's requester: it may not approve its own
    deadline = datetime.fromisoformat(approval["deadline"].replace("Z", "+00:00"))
    assert abs(deadline - paused.hook["expiresAt"]) < timedelta(seconds=1)
    assert approval["hook"]["serviceDeploymentArn"] == deployment_arn("paused")
    assert (approval["hook"]["lifecycleStage"], approval["hook"]["timeoutAction"]) == (STAGE, "ROLLBACK")
    assert approval["services"][0]["containers"][0]["image"] == f"{ECR}/web:1.1"
    record = own_record()
    assert record["outcome"] == "IN_PROGRESS"
    assert record["pause"]["status"] == "AWAITING_ACTION"
    assert record["pause"]["approvalId"] == approval["id"]
    assert record["lifecycleStage"] == STAGE
    [told] = subscriber.received()
    message = told["message"]
    assert (message["event"], message["kind"], message["hook"]["hookId"]) == ("APPROVAL_REQUESTED", "pause", "hook-1")
    assert "paused, waits for approval to continue" in told["subject"]
    assert paused.continued() == []  # nothing decided yet


def test_a_duplicate_hook_event_opens_nothing_more_and_tells_nobody_again(
    paused: Paused, api: Any, subscriber: Subscriber
) -> None:
    paused.event()
    paused.event()
    assert len(api("GET", "/approvals", key_id="alice").json["approvals"]) == 1
    assert [m["message"]["event"] for m in subscriber.received()] == ["APPROVAL_REQUESTED"]


def test_an_event_naming_no_service_deployment_finds_the_waiting_hook_among_those_in_progress(
    paused: Paused, api: Any
) -> None:
    paused.event(service_deployment_arn=None, hook_id=None)
    assert open_pause(api)["hook"]["hookId"] == "hook-1"
    # Those in progress are listed (the record, not yet tied to its service deployment, is tied by a second list).
    listed = [params for operation, params in paused.answers.calls if operation == "ListServiceDeployments"]
    assert [params.get("status") for params in listed] == [["IN_PROGRESS"], None]
    assert own_record()["serviceDeploymentArn"] == deployment_arn("paused")


def test_approving_continues_the_deployment_once(paused: Paused, api: Any, subscriber: Subscriber) -> None:
    paused.event()
    approval = open_pause(api)
    path = f"/approvals/{approval['id']}"
    own = api("POST", path, body={"decision": "approve"}, key_id="ci")
    assert own.status == 403  # the deployment's requester
    assert paused.continued() == []
    answer = api("POST", path, body={"decision": "approve", "comment": "test traffic fine"}, key_id="alice")
    assert answer.status == 200, answer.json
    assert answer.json["approval"]["status"] == "CONTINUED"
    assert answer.json["serviceDeployment"] == {
        "arn": deployment_arn("paused"),
        "hookId": "hook-1",
        "action": "CONTINUE",
    }
    assert paused.continued() == [
        {"serviceDeploymentArn": deployment_arn("paused"), "hookId": "hook-1", "action": "CONTINUE"}
    ]
    assert paused.deployment["lifecycleHookDetails"][0]["status"] == "SUCCEEDED"
    record = own_record()
    assert (record["outcome"], record["pause"]["status"]) == ("IN_PROGRESS", "APPROVED")
    assert record["pause"]["reason"] == "continued by alice"
    again = api("POST", path, body={"decision": "reject"}, key_id="bob")
    assert again.status == 409
    assert len(paused.continued()) == 1
    assert api("GET", "/approvals", key_id="alice").json["approvals"] == []


def test_rejecting_rolls_the_deployment_back(paused: Paused, api: Any) -> None:
    paused.event()
    approval = open_pause(api)
    answer = api(
        "POST", f"/approvals/{approval['id']}", body={"decision": "reject", "comment": "5xx on test"}, key_id="ci"
    )
    assert answer.status == 200, answer.json
    assert answer.json["approval"]["status"] == "REJECTED"
    assert answer.json["approval"]["reason"] == "rejected by ci: 5xx on test; ECS rolls the deployment back"
    assert [c["action"] for c in paused.continued()] == ["ROLLBACK"]
    assert paused.deployment["status"] == "ROLLBACK_REQUESTED"
    record = own_record()
    assert record["pause"]["status"] == "REJECTED"
    assert record["outcome"] == "IN_PROGRESS"  # ECS's events and record say how the rollback ends


def test_n_votes_from_the_approvals_tag_apply(paused: Paused, api: Any, setup_ecs: Any, workload: Workload) -> None:
    require(setup_ecs, workload, 2)
    paused.event()
    approval = open_pause(api)
    assert approval["required"] == 2
    path = f"/approvals/{approval['id']}"
    first = api("POST", path, body={"decision": "approve"}, key_id="alice")
    assert (first.json["approval"]["status"], first.json["approval"]["approvals"]) == ("PENDING", 1)
    assert paused.continued() == []
    second = api("POST", path, body={"decision": "approve"}, key_id="bob")
    assert second.json["approval"]["status"] == "CONTINUED"
    assert second.json["approval"]["approvedBy"] == ["alice", "bob"]
    assert len(paused.continued()) == 1


def test_a_hook_decided_elsewhere_ends_the_approval_stale_in_ecs_words(paused: Paused, api: Any) -> None:
    paused.event()
    approval = open_pause(api)
    paused.deployment["lifecycleHookDetails"][0]["status"] = "SUCCEEDED"  # continued in ECS's console
    answer = api("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert answer.status == 409
    assert "ECS no longer waits at hook hook-1" in answer.json["Message"]
    assert "is not awaiting action" in answer.json["Message"]
    ended = api("GET", f"/approvals/{approval['id']}", key_id="alice").json
    assert ended["status"] == "STALE"
    assert own_record()["pause"]["status"] == "STALE"


def test_ecs_failing_to_answer_leaves_the_pause_pending_without_the_vote(
    paused: Paused, api: Any, ecs: Any, virtual_clock: Any
) -> None:
    paused.event()
    approval = open_pause(api)

    def unavailable(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        http = AWSResponse("https://ecs.eu-west-1.amazonaws.com/", 503, {}, None)
        error = {"Code": "ServiceUnavailableException", "Message": "Service unavailable"}
        return http, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 503}}

    ecs.meta.events.register_first("before-call.ecs.ContinueServiceDeployment", unavailable)
    answer = api("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert answer.status >= 500
    assert f"approval {approval['id']} is pending again" in answer.json["Message"]
    again = api("GET", f"/approvals/{approval['id']}", key_id="alice").json
    assert (again["status"], again["approvals"], again["votes"]) == ("PENDING", 0, [])
    ecs.meta.events.unregister("before-call.ecs.ContinueServiceDeployment", unavailable)
    retried = api("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert retried.json["approval"]["status"] == "CONTINUED"
    assert len(paused.continued()) == 1


def test_a_pause_not_decided_by_the_hooks_expiry_expires_naming_ecss_timeout_action(
    paused: Paused, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused.event()
    approval = open_pause(api)
    later = datetime.now(UTC) + timedelta(hours=3)
    monkeypatch.setattr(approvals, "now_utc", lambda: later)
    ended = api("GET", f"/approvals/{approval['id']}", key_id="alice").json
    assert ended["status"] == "EXPIRED"
    assert ended["reason"].endswith("ECS took ROLLBACK")
    assert own_record()["pause"]["status"] == "EXPIRED"
    assert paused.continued() == []


def test_a_pause_of_a_deployment_made_elsewhere_waits_for_anyone_who_may_approve(
    api: Any, ecs: Any, app_client: Any, workload: Workload
) -> None:
    hook = pause_hook("hook-9")
    answers = ServiceDeploymentAnswers(
        ecs.meta.events,
        [service_deployment("console", "IN_PROGRESS", 3, 0, created=datetime.now(UTC), stage=STAGE, hooks=[hook])],
    )
    app_client.lambda_.invoke("deployment_events", hook_event(deployment_arn("console"), "hook-9"))
    approval = open_pause(api)
    assert approval["requestedBy"] == pauses.ECS_PRINCIPAL
    assert approval["services"][0]["containers"] == []
    answer = api("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="ci")
    assert answer.json["approval"]["status"] == "CONTINUED"
    assert [op for op, _ in answers.calls].count("ContinueServiceDeployment") == 1


def test_other_hook_events_and_hooks_that_no_longer_wait_open_nothing(
    paused: Paused, api: Any, request_log: list[dict[str, Any]]
) -> None:
    paused.event(name="HOOK_SUCCEEDED")
    paused.deployment["lifecycleHookDetails"][0]["status"] = "SUCCEEDED"
    paused.event()
    assert api("GET", "/approvals", key_id="alice").json["approvals"] == []
    ignored = [line["ignored"] for line in request_log if line.get("function") == "deployment_events"]
    assert ignored == [
        "hook event HOOK_SUCCEEDED asks for no decision",
        "no PAUSE hook of web waits for a decision (decided already?)",
    ]


def test_a_pause_is_not_superseded_by_a_newer_change_asking_for_approval(
    paused: Paused, api: Any, setup_ecs: Any, workload: Workload
) -> None:
    paused.event()
    require(setup_ecs, workload, 1)
    asked = api("POST", "/update", body={**UPDATE, "image": f"{ECR}/web:1.2"}, key_id="ci")
    assert asked.status == 202
    kinds = sorted((a["kind"], a["status"]) for a in api("GET", "/approvals", key_id="alice").json["approvals"])
    assert kinds == [("deploy", "PENDING"), ("pause", "PENDING")]


def test_two_deciders_at_the_same_instant_tell_ecs_once(paused: Paused, atomic_aws: None) -> None:
    paused.event()
    [approval] = approvals.listed(table())
    start = threading.Barrier(2)
    answers: list[Any] = []

    def decide(who: str, decision: str) -> None:
        guard = Guard(Principal(who, "key"), AccessPolicy())
        start.wait()
        try:
            deployer = wiring.approval_deployer(guard)
            answers.append(votes.vote(table(), approval.id, guard, votes.Vote(decision), deployer))
        except Exception as refused:
            answers.append(refused)

    threads = [
        threading.Thread(target=decide, args=("alice", "approve")),
        threading.Thread(target=decide, args=("bob", "reject")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    decided = [a for a in answers if isinstance(a, dict)]
    refused = [a for a in answers if not isinstance(a, dict)]
    assert len(decided) == 1
    assert len(refused) == 1
    assert "takes no more votes" in str(refused[0])
    assert len(paused.continued()) == 1
    assert decided[0]["serviceDeployment"]["action"] == paused.continued()[0]["action"]


def test_a_deployment_that_ends_while_its_pause_waits_ends_the_pause_stale(
    paused: Paused, api: Any, ecs_deployments: EcsDeployments, subscriber: Subscriber
) -> None:
    paused.event()
    approval = open_pause(api)
    subscriber.received()
    # Someone stopped it in ECS's console: ECS's record says STOPPED, and its event arrives.
    paused.deployment.update(status="STOPPED", stoppedAt=paused.at + timedelta(minutes=4))
    event = deployment_event("SERVICE_DEPLOYMENT_FAILED", ecs_deployments.made[-1]["id"], "stopped")
    paused.app_client.lambda_.invoke("deployment_events", event)
    record = own_record()
    assert (record["outcome"], record["pause"]["status"]) == ("STOPPED", "STALE")
    ended = api("GET", f"/approvals/{approval['id']}", key_id="alice").json
    assert ended["status"] == "STALE"
    assert ended["reason"].startswith("the deployment ended STOPPED while it waited")
    assert "APPROVAL_STALE" in [m["message"]["event"] for m in subscriber.received()]
    assert paused.continued() == []


def conflict_once_on(dynamodb: Any, operation: str, when: Any) -> list[int]:
    """Cancel the first `operation` call for which `when(params)` holds, as DynamoDB cancels a transaction
    another writer got to first (nothing written); returns the count of cancellations."""
    cancelled: list[int] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        if not cancelled and when(params):
            cancelled.append(1)
            raise client_error(operation, "TransactionCanceledException", "Transaction cancelled [ConditionalCheck]")

    dynamodb.meta.events.register(f"provide-client-params.dynamodb.{operation}", hook)
    return cancelled


def test_a_final_write_that_loses_to_another_writer_is_retried_once_ecs_took_the_decision(
    paused: Paused, api: Any
) -> None:
    paused.event()
    approval = open_pause(api)
    cancelled = conflict_once_on(
        clients.dynamodb_client(), "TransactWriteItems", lambda params: "CONTINUED" in json.dumps(params, default=str)
    )
    answer = api("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert cancelled == [1]
    assert answer.json["approval"]["status"] == "CONTINUED"
    assert api("GET", f"/approvals/{approval['id']}", key_id="alice").json["status"] == "CONTINUED"
    assert own_record()["pause"]["status"] == "APPROVED"
    assert len(paused.continued()) == 1


def test_an_answer_lost_after_ecs_took_the_decision_is_read_from_ecss_record_and_never_sent_twice(
    paused: Paused, api: Any, ecs: Any
) -> None:
    paused.event()
    approval = open_pause(api)
    served = paused.answers._continue

    def taken_but_lost(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        served(params)  # ECS takes it ...
        error = {"Code": "ServiceUnavailableException", "Message": "Service unavailable"}
        return 503, {"Error": error}  # ... and the answer is a 5xx

    paused.answers._continue = taken_but_lost  # type: ignore[method-assign]
    answer = api("POST", f"/approvals/{approval['id']}", body={"decision": "reject"}, key_id="alice")
    assert answer.status == 200, answer.json
    assert answer.json["approval"]["status"] == "REJECTED"
    assert answer.json["approval"]["reason"].endswith("(ECS's answer was lost)")
    assert len(paused.continued()) == 1  # not sent again by botocore's retries
    assert paused.deployment["status"] == "ROLLBACK_REQUESTED"


def test_a_deciding_vote_that_cannot_reach_ecs_records_no_decision(
    paused: Paused, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused.event()
    approval = open_pause(api)

    def unreachable(*_: Any, **__: Any) -> Any:
        raise AwsCallError("AssumeRole", "AssumeRole failed: AccessDenied: not allowed")

    monkeypatch.setattr(wiring, "reach", unreachable)
    answer = api("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert answer.status == 502
    again = api("GET", f"/approvals/{approval['id']}", key_id="alice").json
    assert (again["status"], again["votes"]) == ("PENDING", [])
    assert paused.continued() == []


def test_the_sweep_reopens_a_pause_whose_decision_never_finished(
    paused: Paused, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused.event()
    [approval] = approvals.listed(table())
    ballot = {"decision": "approve", "comment": None, "at": "2026-12-06T10:00:00.000Z", "by": "alice"}
    approvals.apply(table(), approval, Transition(approvals.APPROVING, vote=("alice", ballot)), approvals.now_utc())
    swept = votes.sweep(table(), None, None)  # the function died before telling ECS, minutes ago
    assert swept.reopened == [approval.id]
    assert swept.failed == []
    again = api("GET", f"/approvals/{approval.id}", key_id="alice").json
    assert (again["status"], again["approvals"]) == ("PENDING", 0)
    assert "decide again" in again["reason"]
    decided = api("POST", f"/approvals/{approval.id}", body={"decision": "approve"}, key_id="alice")
    assert decided.json["approval"]["status"] == "CONTINUED"


def test_continuing_waits_for_a_freeze_but_rolling_back_does_not(paused: Paused, api: Any) -> None:
    paused.event()
    approval = open_pause(api)
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
    frozen = api("POST", "/freezes", body={"scope": {}, "until": until, "reason": "launch"}, key_id="ops")
    assert frozen.status == 201, frozen.json
    refused = api("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert refused.status == 423
    assert f"pause {approval['id']} stays pending" in refused.json["Message"]
    assert api("GET", f"/approvals/{approval['id']}", key_id="alice").json["status"] == "PENDING"
    assert paused.continued() == []
    rejected = api("POST", f"/approvals/{approval['id']}", body={"decision": "reject"}, key_id="alice")
    assert rejected.json["approval"]["status"] == "REJECTED"
    assert [c["action"] for c in paused.continued()] == ["ROLLBACK"]


def test_a_pause_ends_when_the_event_is_delivered_again_after_a_failure(
    paused: Paused, api: Any, ecs_deployments: EcsDeployments, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused.event()
    approval = open_pause(api)
    paused.deployment.update(status="STOPPED", stoppedAt=paused.at + timedelta(minutes=4))
    event = deployment_event("SERVICE_DEPLOYMENT_FAILED", ecs_deployments.made[-1]["id"], "stopped")
    real = pauses.end_waiting

    def throttled(*_: Any) -> Any:
        raise AwsCallError("GetItem", "GetItem was throttled by AWS")

    monkeypatch.setattr(pauses, "end_waiting", throttled)
    with pytest.raises(Exception, match="throttled"):
        paused.app_client.lambda_.invoke("deployment_events", event)
    assert own_record()["outcome"] == "STOPPED"  # the record moved; its pause did not end
    monkeypatch.setattr(pauses, "end_waiting", real)
    paused.app_client.lambda_.invoke("deployment_events", event)  # Lambda's retry
    assert api("GET", f"/approvals/{approval['id']}", key_id="alice").json["status"] == "STALE"


def test_a_late_event_of_a_deployment_that_has_ended_opens_nothing(paused: Paused, api: Any) -> None:
    paused.deployment["status"] = "ROLLBACK_SUCCESSFUL"
    paused.event()
    assert api("GET", "/approvals", key_id="alice").json["approvals"] == []


def described(schema_name: str) -> Any:
    """A validator of openapi.yaml's component `schema_name` (OpenAPI 3.0's `nullable` as JSON Schema's null)."""
    jsonschema = pytest.importorskip("jsonschema", reason="the development requirements have it; the SDK run's do not")
    document = yaml.safe_load((PROJECT_DIR / "openapi.yaml").read_text())

    def plain(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return plain(document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]])
            converted = {key: plain(value) for key, value in node.items() if key != "nullable"}
            if node.get("nullable"):
                return {"anyOf": [converted, {"type": "null"}]}
            return converted
        if isinstance(node, list):
            return [plain(item) for item in node]
        return node

    return jsonschema.Draft7Validator(plain(document["components"]["schemas"][schema_name]))


def test_what_the_routes_answer_about_a_pause_is_what_openapi_yaml_describes(paused: Paused, api: Any) -> None:
    paused.event()
    approval = open_pause(api)
    described("Approval").validate(api("GET", f"/approvals/{approval['id']}", key_id="alice").json)
    [record] = [r for r in api("GET", "/services/test-cluster/web/history", key_id="alice").json["records"]]
    described("DeploymentRecord").validate(record)
    assert record["pause"]["status"] == "AWAITING_ACTION"
    voted = api("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice").json
    described("Approval").validate(voted["approval"])
    assert voted["approval"]["status"] == "CONTINUED"


def test_a_deploy_approval_and_its_records_are_what_openapi_yaml_describes_too(
    api: Any, setup_ecs: Any, workload: Workload
) -> None:
    require(setup_ecs, workload, 1)
    asked = api("POST", "/update", body=UPDATE, key_id="ci")
    assert asked.status == 202
    described("Approval").validate(asked.json["approval"])
    voted = api("POST", f"/approvals/{asked.json['approval']['id']}", body={"decision": "approve"}, key_id="alice")
    described("Approval").validate(voted.json["approval"])
    for record in api("GET", "/services/test-cluster/web/history", key_id="alice").json["records"]:
        described("DeploymentRecord").validate(record)


def test_a_pause_whose_hook_timed_out_expires_when_the_deployments_end_arrives_before_the_sweep(
    paused: Paused, api: Any, ecs_deployments: EcsDeployments, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused.event()
    approval = open_pause(api)
    later = datetime.now(UTC) + timedelta(hours=3)  # past the hook's expiry: ECS rolled back, as its timeout says
    monkeypatch.setattr(approvals, "now_utc", lambda: later)
    paused.deployment.update(status="ROLLBACK_SUCCESSFUL")
    event = deployment_event("SERVICE_DEPLOYMENT_FAILED", ecs_deployments.made[-1]["id"], "timed out")
    paused.app_client.lambda_.invoke("deployment_events", event)
    ended = approvals.get(table(), approval["id"])
    assert ended.status == "EXPIRED"
    assert ended.reason is not None
    assert ended.reason.endswith("ECS took ROLLBACK")
    assert own_record()["pause"]["status"] == "EXPIRED"
