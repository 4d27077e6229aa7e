"""Every account and region from one service: a cluster named by its ARN is reached by assuming the target role
there, and everything (update, fan-out, apply, push, events, history) lands in that account, never at home.

moto keys its backends by account and region, and the credentials its `sts:AssumeRole` answers select the
account of the role assumed: the service's clients made with them act in that account, as on AWS. moto does not
check the role's trust policy or the external id; the tests below check the calls the service makes instead.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from chalicelib.aws import accounts, clients
from chalicelib.core.locations import Location, service_key
from tests.conftest import (
    ACCOUNT,
    ECR,
    PROJECT_DIR,
    REGION,
    EcsDeployments,
    PushQueue,
    Workload,
    deliver,
    index_followers,
    lock_items,
    post,
    records_of,
    running_task_definition,
    stage_locks,
)
from tests.follow.test_outcomes import deployment_event

TARGET = "222222222222"
FAR_REGION = "us-west-2"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{TARGET}:cluster/test-cluster"
SERVICE_ARN = f"arn:aws:ecs:{REGION}:{TARGET}:service/test-cluster/web"
TARGET_ECR = f"{TARGET}.dkr.ecr.{REGION}.amazonaws.com"
ROLE = f"arn:aws:iam::{TARGET}:role/ecs-image-updater-target"
FOLLOWS_MINOR = {"image-updater:policy": "semver:minor"}
HEADERS = {"x-api-key": "test-key-0123456789"}


class Elsewhere:
    """Account 222222222222 as its owner sees it: clients with the target role's credentials."""

    def __init__(self, region: str = REGION) -> None:
        credentials = (
            clients.session()
            .client("sts", region_name=REGION)
            .assume_role(RoleArn=ROLE, RoleSessionName="arrange")["Credentials"]
        )
        self.keys = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
        self.region = region
        self.ecs = self.client("ecs")

    def client(self, service: str) -> Any:
        return clients.session().client(service, region_name=self.region, **self.keys)

    def workload(
        self, cluster: str = "test-cluster", services: tuple[str, ...] = ("web",), tags: dict[str, str] | None = None
    ) -> str:
        """Services running web:1.0.0 from this account's ECR; returns the revision's ARN."""
        self.ecs.create_cluster(clusterName=cluster)
        arn = self.ecs.register_task_definition(
            family="web",
            networkMode="bridge",
            containerDefinitions=[
                {"name": "app", "image": f"{TARGET_ECR}/web:1.0.0", "memory": 256, "essential": True},
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        for name in services:
            self.ecs.create_service(
                cluster=cluster,
                serviceName=name,
                taskDefinition=arn,
                desiredCount=1,
                tags=[{"key": key, "value": value} for key, value in (tags or {}).items()],
            )
        return str(arn)

    def image_of(self, service: str = "web", cluster: str = "test-cluster") -> str:
        described = self.ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        definition = self.ecs.describe_task_definition(taskDefinition=described["taskDefinition"])["taskDefinition"]
        return str(definition["containerDefinitions"][0]["image"])


@pytest.fixture
def elsewhere(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> Elsewhere:
    monkeypatch.setenv("TARGET_ACCOUNTS", TARGET)
    monkeypatch.setenv("TARGET_REGIONS", FAR_REGION)
    return Elsewhere()


@pytest.fixture
def aws_calls(moto_world: None) -> list[tuple[str, str]]:
    """(service, operation) of every call any client of the process makes from here on."""
    made: list[tuple[str, str]] = []

    def note(model: Any, **_: Any) -> None:
        made.append((model.service_model.service_name, model.name))

    clients.session().events.register("before-parameter-build", note)  # the clients made from here on
    for client in list(clients._clients.values()):  # and those the service made already
        client.meta.events.register("before-parameter-build", note)
    return made


@pytest.fixture
def remote_deployments(moto_world: None) -> EcsDeployments:
    """UpdateService answers carrying the new deployment, as ECS's do, for every ECS client made from here on
    (the service makes its clients for another account when it first reaches it)."""
    return EcsDeployments(clients.session().events)


def path_of(identifier: str) -> str:
    """An ARN in a URL path, as a client sends it: ':' as %3A and '/' as %2F."""
    return quote(identifier, safe="")


def test_an_update_of_a_cluster_named_by_its_arn_lands_in_that_account(
    http: Any, elsewhere: Elsewhere, workload: Workload, remote_deployments: EcsDeployments, setup_ecs: Any
) -> None:
    elsewhere.workload()
    home_image = running_task_definition(setup_ecs, workload)["containerDefinitions"][0]["image"]
    answer = post(http, "/update", {"cluster": CLUSTER_ARN, "service": "web", "image": f"{TARGET_ECR}/web:2.0"})
    assert answer.status_code == 200, answer.json_body
    assert answer.json_body["changed"] is True
    assert elsewhere.image_of() == f"{TARGET_ECR}/web:2.0"
    assert running_task_definition(setup_ecs, workload)["containerDefinitions"][0]["image"] == home_image
    # The same names at home have no history; the target's has one record, with its account and region.
    assert records_of("test-cluster", "web") == []
    history = http.get(f"/services/{path_of(CLUSTER_ARN)}/web/history", headers=HEADERS)
    assert history.status_code == 200, history.json_body
    assert (history.json_body["account"], history.json_body["region"]) == (TARGET, REGION)
    [record] = history.json_body["records"]
    assert (record["account"], record["region"], record["action"]) == (TARGET, REGION, "update")
    assert record["deploymentId"] == remote_deployments.last_id


def test_a_fan_out_and_an_apply_land_in_the_target_account(
    http: Any, elsewhere: Elsewhere, remote_deployments: EcsDeployments, setup_ecs: Any
) -> None:
    elsewhere.workload(services=("web", "api"))
    setup_ecs.create_cluster(clusterName="test-cluster")  # the same name at home, with no services
    body = {"cluster": CLUSTER_ARN, "services": ["web", "api"], "image": f"{TARGET_ECR}/web:3.0"}
    answer = post(http, "/update", body)
    assert answer.status_code == 200, answer.json_body
    assert [r["changed"] for r in answer.json_body["services"]] == [True, True]
    assert elsewhere.image_of("api") == f"{TARGET_ECR}/web:3.0"

    headers = HEADERS
    description = http.get(f"/services/{path_of(CLUSTER_ARN)}/web/description", headers=headers)
    assert description.status_code == 200, description.json_body
    exported = description.json_body
    assert exported["cluster"] == CLUSTER_ARN  # applying it reaches the same account again
    exported["containers"]["app"] = f"{TARGET_ECR}/web:4.0"
    applied = post(http, "/apply", {"descriptions": [exported]})
    assert applied.status_code == 200, applied.json_body
    assert elsewhere.image_of("web") == f"{TARGET_ECR}/web:4.0"
    assert records_of("test-cluster", "web") == []


def test_services_named_alike_in_two_accounts_keep_their_own_locks_and_history(
    http: Any, elsewhere: Elsewhere, workload: Workload, ecs_deployments: EcsDeployments, remote_deployments: Any
) -> None:
    elsewhere.workload()
    # Home's test-cluster/web is locked by someone else: the target's test-cluster/web is not.
    with stage_locks().hold(["test-cluster/web"], "someone else"):
        busy = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:2"})
        moved = post(http, "/update", {"cluster": CLUSTER_ARN, "service": "web", "image": f"{TARGET_ECR}/web:2.0"})
    assert busy.status_code == 409
    assert moved.status_code == 200, moved.json_body
    assert (
        post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:3"}).status_code == 200
    )
    assert lock_items() == []
    headers = HEADERS
    home = http.get("/services/test-cluster/web/history", headers=headers).json_body
    there = http.get(f"/services/{path_of(CLUSTER_ARN)}/web/history", headers=headers).json_body
    assert [r["containers"][0]["image"] for r in home["records"]] == [f"{ECR}/web:3"]
    assert [r["containers"][0]["image"] for r in there["records"]] == [f"{TARGET_ECR}/web:2.0"]
    assert (home["account"], there["account"]) == (ACCOUNT, TARGET)
    assert records_of(f"{TARGET}/{REGION}/test-cluster", "web")  # the target's key carries its place


def test_a_forwarded_ecs_event_completes_the_record_of_that_accounts_deployment(
    app_client: Any, elsewhere: Elsewhere, workload: Workload, ecs_deployments: EcsDeployments, remote_deployments: Any
) -> None:
    elsewhere.workload()
    http = app_client.http
    assert (
        post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:2"}).status_code == 200
    )
    assert (
        post(http, "/update", {"cluster": CLUSTER_ARN, "service": "web", "image": f"{TARGET_ECR}/web:2.0"}).status_code
        == 200
    )
    remote_id = remote_deployments.last_id
    assert remote_id == ecs_deployments.last_id  # the same id in both accounts: only the place tells them apart
    event = deployment_event("SERVICE_DEPLOYMENT_COMPLETED", remote_id, service_arn=SERVICE_ARN)
    app_client.lambda_.invoke("deployment_events", {**event, "account": TARGET})
    [there] = records_of(f"{TARGET}/{REGION}/test-cluster", "web")
    [home] = records_of("test-cluster", "web")
    assert there["outcome"] == "COMPLETED"
    assert home["outcome"] == "IN_PROGRESS"
    # The home deployment of the same id ends on its own, and the other account's record is left as it was.
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_FAILED", remote_id))
    assert records_of("test-cluster", "web")[0]["outcome"] == "FAILED"
    assert records_of(f"{TARGET}/{REGION}/test-cluster", "web")[0]["outcome"] == "COMPLETED"
    # And the status of each, by that id, is its own.
    for cluster, outcome in (("test-cluster", "FAILED"), (path_of(CLUSTER_ARN), "COMPLETED")):
        status = http.get(f"/services/{cluster}/web?deployment={quote(remote_id, safe='')}", headers=HEADERS)
        assert status.status_code == 200, status.json_body
        assert status.json_body["deployment"]["outcome"] == outcome


def test_a_push_to_the_target_accounts_registry_moves_its_followers_there(
    lambda_time: None,
    app_client: Any,
    elsewhere: Elsewhere,
    push_queue: PushQueue,
    remote_deployments: Any,
    setup_ecs: Any,
) -> None:
    elsewhere.workload(tags=FOLLOWS_MINOR)
    index_followers(app_client)  # the hourly reconcile walks the target account too
    event = {
        "version": "0",
        "id": "e-1",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": TARGET,
        "time": "2026-12-01T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "web", "action-type": "PUSH", "image-tag": "1.1.0"},
    }
    app_client.lambda_.invoke("registry_push", event)
    deliver(app_client, push_queue)
    assert elsewhere.image_of() == f"{TARGET_ECR}/web:1.1.0"
    [record] = records_of(f"{TARGET}/{REGION}/test-cluster", "web")
    assert (record["action"], record["account"]) == ("push", TARGET)


@pytest.mark.parametrize(
    ("cluster", "named"),
    [
        ("arn:aws:ecs:eu-west-1:333333333333:cluster/prod", "account 333333333333"),
        (f"arn:aws:ecs:ap-south-1:{TARGET}:cluster/prod", "region ap-south-1"),
        (f"arn:aws:ecs:ap-south-1:{ACCOUNT}:cluster/prod", "region ap-south-1"),
    ],
)
def test_an_account_or_region_not_listed_is_refused_before_any_call(
    http: Any, elsewhere: Elsewhere, aws_calls: list[tuple[str, str]], cluster: str, named: str
) -> None:
    accounts.home()  # home is learned once per container (from the function's ARN on Lambda)
    aws_calls.clear()
    answer = post(http, "/update", {"cluster": cluster, "service": "web", "image": f"{TARGET_ECR}/web:2.0"})
    assert answer.status_code == 403, answer.json_body
    assert named in answer.json_body["Message"]
    assert aws_calls == []


def test_a_request_naming_two_accounts_is_refused(http: Any, elsewhere: Elsewhere) -> None:
    body = {
        "cluster": CLUSTER_ARN,
        "service": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/test-cluster/web",
        "image": "a:1",
    }
    answer = post(http, "/update", body)
    assert answer.status_code == 400
    assert "one account and region" in answer.json_body["Message"]


def test_a_home_cluster_named_by_its_arn_needs_no_role(
    http: Any, workload: Workload, ecs_deployments: EcsDeployments, aws_calls: list[tuple[str, str]]
) -> None:
    home_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/test-cluster"
    answer = post(http, "/update", {"cluster": home_arn, "service": "web", "image": f"{ECR}/web:2"})
    assert answer.status_code == 200, answer.json_body
    assert ("sts", "AssumeRole") not in aws_calls
    assert len(records_of("test-cluster", "web")) == 1  # kept where a plain name's records are


def test_credentials_are_assumed_once_and_renewed_only_near_their_expiry(
    http: Any, elsewhere: Elsewhere, aws_calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere.workload()
    headers = HEADERS
    for _ in range(3):
        assert http.get(f"/services/{path_of(CLUSTER_ARN)}/web", headers=headers).status_code == 200
    assert aws_calls.count(("sts", "AssumeRole")) == 1
    # Within five minutes of expiry (here: always, as the renewal margin is made longer than their life).
    monkeypatch.setattr(accounts, "RENEW_BEFORE", timedelta(hours=2))
    assert http.get(f"/services/{path_of(CLUSTER_ARN)}/web", headers=headers).status_code == 200
    assert aws_calls.count(("sts", "AssumeRole")) == 2


def test_the_role_assumed_is_the_configured_one_with_the_external_id(
    http: Any, elsewhere: Elsewhere, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere.workload()
    monkeypatch.setenv("TARGET_ROLE_NAME", "deployer")
    monkeypatch.setenv("TARGET_EXTERNAL_ID", "org-secret-id")
    sent: list[dict[str, Any]] = []
    clients.session().events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params))
    )
    headers = HEADERS
    assert http.get(f"/services/{path_of(CLUSTER_ARN)}/web", headers=headers).status_code == 200
    [call] = sent
    assert call["RoleArn"] == f"arn:aws:iam::{TARGET}:role/deployer"
    assert call["ExternalId"] == "org-secret-id"


@pytest.mark.parametrize(
    "path",
    [
        quote(CLUSTER_ARN, safe=""),  # ':' and '/' encoded, as `chalice local` hands it over
        CLUSTER_ARN.replace("/", "%2F"),  # what API Gateway leaves encoded
    ],
)
def test_a_cluster_arn_in_a_path_is_decoded_once(http: Any, elsewhere: Elsewhere, path: str) -> None:
    elsewhere.workload()
    answer = http.get(f"/services/{path}/web", headers=HEADERS)
    assert answer.status_code == 200, answer.json_body
    listing = http.get(f"/clusters/{path}/services", headers=HEADERS)
    assert listing.status_code == 200, listing.json_body
    assert [s["service"] for s in listing.json_body["services"]] == ["web"]


def test_a_permission_names_clusters_by_arn_glob(
    http: Any,
    elsewhere: Elsewhere,
    workload: Workload,
    remote_deployments: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    elsewhere.workload()
    rules = {"rules": [{"principals": ["*"], "actions": ["*"], "clusters": [f"arn:aws:ecs:*:{TARGET}:cluster/*"]}]}
    (tmp_path / "permissions.yaml").write_text(yaml.safe_dump(rules))
    monkeypatch.setenv("PERMISSIONS_FILE", str(tmp_path / "permissions.yaml"))
    there = post(http, "/update", {"cluster": CLUSTER_ARN, "service": "web", "image": f"{TARGET_ECR}/web:2.0"})
    home = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:2"})
    assert there.status_code == 200, there.json_body
    assert home.status_code == 403


def test_the_target_roles_policy_covers_every_call_made_in_the_target_account(
    lambda_time: None,
    app_client: Any,
    elsewhere: Elsewhere,
    push_queue: PushQueue,
    remote_deployments: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Everything the service does in a target account, with its calls held against infra/target-account.yaml's
    role policy; and every function that reaches one may assume the role."""
    monkeypatch.setenv("VERIFY_IMAGES", "require")
    from tests.deploy.test_verify import ecr_push

    ecr = elsewhere.client("ecr")
    for tag in ("1.0.0", "1.1.0", "2.0"):
        ecr_push(tag, ecr=ecr)  # into the target account's registry
    elsewhere.workload(tags=FOLLOWS_MINOR)
    made_there: set[str] = set()
    new_client = clients.new_client

    def noting(service: str, region: str | None = None, credentials: Any = None) -> Any:
        client = new_client(service, region, credentials)
        if credentials:
            prefix = {"resourcegroupstaggingapi": "tag"}.get(service, service)
            client.meta.events.register(
                "provide-client-params", lambda model, **_: made_there.add(f"{prefix}:{model.name}")
            )
        return client

    monkeypatch.setattr(clients, "new_client", noting)
    http = app_client.http
    headers = HEADERS
    index_followers(app_client)
    assert (
        post(http, "/update", {"cluster": CLUSTER_ARN, "service": "web", "image": f"{TARGET_ECR}/web:2.0"}).status_code
        == 200
    )
    assert http.get(f"/services/{path_of(CLUSTER_ARN)}/web", headers=headers).status_code == 200
    assert http.get(f"/clusters/{path_of(CLUSTER_ARN)}/services", headers=headers).status_code == 200
    assert http.get(f"/services/{path_of(CLUSTER_ARN)}/web/description", headers=headers).status_code == 200
    revision = elsewhere.ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"][0]
    assert (
        post(http, "/rollback", {"cluster": CLUSTER_ARN, "service": "web", "taskDefinition": revision}).status_code
        == 200
    )
    assert post(http, "/hooks/push", {"repository": f"{TARGET_ECR}/web", "tag": "1.1.0"}).status_code == 202
    deliver(app_client, push_queue)
    app_client.lambda_.invoke(
        "follower_tags",
        {"id": "t", "source": "aws.tag", "detail-type": "Tag Change on Resource", "resources": [SERVICE_ARN]},
    )
    assert {"ecs:UpdateService", "ecs:RegisterTaskDefinition", "ecr:BatchGetImage", "tag:GetResources"} <= made_there

    template = yaml.load((PROJECT_DIR / "infra" / "target-account.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    role = template["Resources"]["TargetRole"]["Properties"]
    allowed = {
        action
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert made_there <= allowed, sorted(made_there - allowed)
    for policy_file in (
        "policy-dev.json",
        "policy-dev-push-work.json",
        "policy-dev-pipeline-deploy.json",
        "policy-dev-deployment-events.json",
        "policy-dev-follower-tags.json",
        "policy-dev-followers-reconcile.json",
    ):
        statements = json.loads((PROJECT_DIR / ".chalice" / policy_file).read_text())["Statement"]
        assume = [s for s in statements if s["Action"] == "sts:AssumeRole"]
        assert [s["Resource"] for s in assume] == ["arn:aws:iam::*:role/ecs-image-updater-target"], policy_file


class _CfnLoader(yaml.SafeLoader):
    """CloudFormation's short-form functions (!Sub, !Ref, …) read as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_a_key_elsewhere_names_its_place() -> None:
    assert service_key("prod", "web") == "prod/web"
    assert service_key("prod", "web", Location(TARGET, REGION)) == f"{TARGET}/{REGION}/prod/web"
    assert service_key(CLUSTER_ARN, SERVICE_ARN, Location(TARGET, REGION)) == f"{TARGET}/{REGION}/test-cluster/web"


def test_a_pipeline_job_naming_a_cluster_arn_deploys_in_that_account(
    lambda_time: None,
    app_client: Any,
    codepipeline: Any,
    elsewhere: Elsewhere,
    remote_deployments: EcsDeployments,
) -> None:
    from tests.triggers.test_pipeline import artifact, job_event

    elsewhere.workload()
    definitions = artifact({"imagedefinitions.json": [{"name": "app", "imageUri": f"{TARGET_ECR}/web:2.0"}]})
    codepipeline.expect_success("job-1", variables=True)
    parameters = {"cluster": CLUSTER_ARN, "service": "web", "wait": False}
    app_client.lambda_.invoke("pipeline_deploy", job_event("job-1", parameters, definitions))
    assert elsewhere.image_of() == f"{TARGET_ECR}/web:2.0"
    assert codepipeline.last()["outputVariables"]["deploymentId"] == remote_deployments.last_id
    [record] = records_of(f"{TARGET}/{REGION}/test-cluster", "web")
    assert (record["action"], record["account"]) == ("pipeline", TARGET)


def test_a_pipeline_job_naming_an_unlisted_account_fails_as_a_permission_error(
    lambda_time: None, app_client: Any, codepipeline: Any, elsewhere: Elsewhere
) -> None:
    from tests.triggers.test_pipeline import artifact, job_event

    definitions = artifact({"imagedefinitions.json": [{"name": "app", "imageUri": f"{TARGET_ECR}/web:2.0"}]})
    codepipeline.expect_failure("job-2")
    parameters = {"cluster": "arn:aws:ecs:eu-west-1:333333333333:cluster/prod", "service": "web", "wait": False}
    app_client.lambda_.invoke("pipeline_deploy", job_event("job-2", parameters, definitions))
    failure = codepipeline.last()["failureDetails"]
    assert failure["type"] == "PermissionError"
    assert "account 333333333333" in failure["message"]


def test_an_update_elsewhere_costs_the_calls_of_one_at_home_and_one_assume_role_per_account(
    http: Any,
    elsewhere: Elsewhere,
    workload: Workload,
    ecs_deployments: EcsDeployments,
    remote_deployments: EcsDeployments,
    aws_calls: list[tuple[str, str]],
) -> None:
    elsewhere.workload()
    assert (
        post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:2"}).status_code == 200
    )
    at_home = [call for call in aws_calls if call[0] == "ecs"]
    aws_calls.clear()
    for tag in ("2.0", "3.0"):
        body = {"cluster": CLUSTER_ARN, "service": "web", "image": f"{TARGET_ECR}/web:{tag}"}
        assert post(http, "/update", body).status_code == 200
    there = [call for call in aws_calls if call[0] == "ecs"]
    assert there == at_home * 2
    assert [call for call in aws_calls if call[0] == "sts"] == [("sts", "AssumeRole")]


@pytest.mark.parametrize(
    ("allowed", "home_status", "there_status"),
    [
        ("test-cluster", 200, 403),  # a name means the home account's cluster, as in a request
        (f"arn:aws:ecs:*:{TARGET}:cluster/*", 403, 200),
        (f"test-cluster,arn:aws:ecs:{REGION}:{TARGET}:cluster/test-*", 200, 200),
    ],
)
def test_a_cluster_name_in_the_allowlists_and_rules_means_the_home_one(
    http: Any,
    elsewhere: Elsewhere,
    workload: Workload,
    ecs_deployments: EcsDeployments,
    remote_deployments: EcsDeployments,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    allowed: str,
    home_status: int,
    there_status: int,
) -> None:
    elsewhere.workload()
    home = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:2"}
    there = {"cluster": CLUSTER_ARN, "service": "web", "image": f"{TARGET_ECR}/web:2.0"}
    monkeypatch.setenv("ALLOWED_CLUSTERS", allowed)
    assert (post(http, "/update", home).status_code, post(http, "/update", there).status_code) == (
        home_status,
        there_status,
    )
    # The same in a permissions file's rule (the allowlists let everything through).
    monkeypatch.delenv("ALLOWED_CLUSTERS")
    rules = {"rules": [{"principals": ["*"], "actions": ["*"], "clusters": allowed.split(",")}]}
    (tmp_path / "permissions.yaml").write_text(yaml.safe_dump(rules))
    monkeypatch.setenv("PERMISSIONS_FILE", str(tmp_path / "permissions.yaml"))
    home["image"], there["image"] = f"{ECR}/web:3", f"{TARGET_ECR}/web:3.0"
    assert (post(http, "/update", home).status_code, post(http, "/update", there).status_code) == (
        home_status,
        there_status,
    )
