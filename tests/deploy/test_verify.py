"""Refuse a deployment that cannot work, before anything is written: the image, its platform, the secrets.

ECR is moto's (images put with `put_image`); any other registry is the small
OCI registry of tests/deploy/oci_registry.py on 127.0.0.1; secrets and
parameters are moto's Secrets Manager and SSM. Every test runs with
VERIFY_IMAGES=require, as the stages leave it, unless it says otherwise.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.aws import clients
from chalicelib.deploy import verify
from tests.conftest import (
    ECR,
    REGION,
    CodePipeline,
    EcsDeployments,
    PushQueue,
    Workload,
    active_revisions,
    create_follower,
    create_service,
    deliver,
    index_followers,
    post,
    records_of,
    register,
    rich_container,
    running_task_definition,
)
from tests.deploy.oci_registry import TOKEN, Registry, serve

WEB = f"{ECR}/web"


@pytest.fixture(autouse=True)
def verifying(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFY_IMAGES", "require")


@pytest.fixture
def registry() -> Iterator[Registry]:
    with serve() as running:
        yield running


def ecr_push(
    tag: str,
    repository: str = "web",
    manifest: dict[str, Any] | None = None,
    media_type: str | None = None,
    ecr: Any = None,
) -> str:
    """Put an image into moto's ECR (the home account's, or the one of the client `ecr`); returns its digest."""
    ecr = ecr or clients.session().client("ecr", region_name=REGION)
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    body = manifest or {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 1,
                "digest": "sha256:" + tag.replace(".", "").ljust(64, "a")[:64],
            }
        ],
    }
    extra = {"imageManifestMediaType": media_type} if media_type else {}
    answer = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(body), imageTag=tag, **extra)
    return str(answer["image"]["imageId"]["imageDigest"])


def update(http: Any, image: str, **extra: Any) -> Any:
    return post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": image, "container": "app", **extra}
    )


def app_image(setup_ecs: Any, workload: Workload) -> str:
    return str(running_task_definition(setup_ecs, workload)["containerDefinitions"][0]["image"])


# -- ECR ------------------------------------------------------------------------------------------


def test_an_ecr_tag_that_exists_deploys_and_its_digest_is_answered_and_recorded(
    http: Any, setup_ecs: Any, workload: Workload
) -> None:
    digest = ecr_push("1.1")
    answer = update(http, f"{WEB}:1.1")
    assert answer.status_code == 200, answer.json_body
    assert answer.json_body["containers"] == [
        {"name": "app", "previousImage": f"{WEB}:1.0", "image": f"{WEB}:1.1", "digest": digest}
    ]
    assert answer.json_body["warnings"] == []
    [record] = records_of("test-cluster", "web")
    assert record["containers"][0]["digest"] == digest


def test_an_ecr_tag_that_was_never_pushed_is_a_422_and_nothing_is_written(
    http: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    ecr_push("1.1")
    answer = update(http, f"{WEB}:9.9.9")
    assert answer.status_code == 422
    assert answer.json_body["Code"] == "UnprocessableEntityError"
    assert answer.json_body["Message"] == (
        f"the deployment cannot work, so nothing was changed: container 'app': image {WEB}:9.9.9 does not exist "
        "(ECR ImageNotFound: Requested image not found)"
    )
    assert app_image(setup_ecs, workload) == f"{WEB}:1.0"
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]  # no revision registered
    assert "RegisterTaskDefinition" not in calls
    assert "UpdateService" not in calls
    [record] = records_of("test-cluster", "web")  # the lock was taken: the refusal is in the history
    assert (record["outcome"], record["status"]) == ("ERROR", 422)


def test_a_repository_that_does_not_exist_is_a_422(http: Any, setup_ecs: Any, workload: Workload) -> None:
    answer = update(http, f"{ECR}/nothing-here:1")
    assert answer.status_code == 422
    assert "does not exist (no repository:" in answer.json_body["Message"]


def test_a_digest_is_looked_up_by_digest(http: Any, setup_ecs: Any, workload: Workload) -> None:
    digest = ecr_push("1.1")
    assert update(http, f"{WEB}@{digest}").status_code == 200
    missing = update(http, f"{WEB}@sha256:" + "e" * 64)
    assert missing.status_code == 422


def test_a_tag_is_kept_a_minute_and_a_digest_for_good(
    http: Any, setup_ecs: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    ecr_push("1.1")
    ecr_push("1.2")
    lookups: list[str] = []
    clients.regional_client("ecr", REGION).meta.events.register(
        "provide-client-params.ecr.BatchGetImage", lambda params, **_: lookups.append(str(params["imageIds"]))
    )
    now = [1000.0]
    monkeypatch.setattr(verify, "clock", lambda: now[0])
    assert update(http, f"{WEB}:1.1").status_code == 200
    assert update(http, f"{WEB}:1.2").status_code == 200
    assert update(http, f"{WEB}:1.1").status_code == 200  # within the minute: no second lookup
    assert len(lookups) == 2
    now[0] += 61
    assert update(http, f"{WEB}:1.2").status_code == 200
    assert len(lookups) == 3


def test_an_index_must_offer_the_tasks_platform(http: Any, setup_ecs: Any, workload: Workload) -> None:
    # The workload's revision runs on linux/arm64 (its runtimePlatform).
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1, "digest": "sha256:" + "d" * 64}
    for tag, architecture in (("amd-only", "amd64"), ("arm-only", "arm64")):
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{**entry, "platform": {"os": "linux", "architecture": architecture}}],
        }
        ecr_push(tag, manifest=index, media_type="application/vnd.oci.image.index.v1+json")
    answer = update(http, f"{WEB}:amd-only")
    assert answer.status_code == 422
    assert f"container 'app': image {WEB}:amd-only offers linux/amd64, not linux/arm64" in answer.json_body["Message"]
    assert update(http, f"{WEB}:arm-only").status_code == 200


# -- any other registry (OCI) ---------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "bearer"])
def test_another_registry_is_asked_over_the_distribution_api(
    http: Any, setup_ecs: Any, workload: Workload, registry: Registry, auth: str | None
) -> None:
    registry.auth = auth
    digest = registry.push("team/app", "2.0")
    answer = update(http, registry.image("team/app", "2.0"))
    assert answer.status_code == 200, answer.json_body
    assert answer.json_body["containers"][0]["digest"] == digest
    heads = [seen for seen in registry.seen if seen.method == "HEAD"]
    assert "application/vnd.oci.image.index.v1+json" in (heads[0].accept or "")
    if auth == "bearer":
        assert [seen.path.split("?")[0] for seen in registry.seen] == [
            "/v2/team/app/manifests/2.0",
            "/token",
            "/v2/team/app/manifests/2.0",
        ]
        assert registry.seen[-1].authorization == f"Bearer {TOKEN}"
        assert "scope=repository%3Ateam%2Fapp%3Apull" in registry.seen[1].path


def test_a_tag_the_registry_does_not_have_is_a_422(
    http: Any, setup_ecs: Any, workload: Workload, registry: Registry
) -> None:
    registry.push("team/app", "2.0")
    answer = update(http, registry.image("team/app", "2.1"))
    assert answer.status_code == 422
    assert "does not exist (the registry has no" in answer.json_body["Message"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_an_index_with_the_platform_deploys_and_one_without_it_is_refused(
    http: Any, setup_ecs: Any, workload: Workload, registry: Registry
) -> None:
    registry.push("team/app", "multi", platforms=[("linux", "amd64"), ("linux", "arm64")])
    registry.push("team/app", "amd", platforms=[("linux", "amd64")])
    assert update(http, registry.image("team/app", "multi")).status_code == 200
    refused = update(http, registry.image("team/app", "amd"))
    assert refused.status_code == 422
    assert "offers linux/amd64, not linux/arm64" in refused.json_body["Message"]


def test_a_task_that_names_no_platform_runs_linux_amd64(setup_ecs: Any, http: Any, registry: Registry) -> None:
    setup_ecs.create_cluster(clusterName="test-cluster")
    arn = setup_ecs.register_task_definition(
        family="plain", containerDefinitions=[{"name": "app", "image": f"{registry.host}/team/app:1", "memory": 128}]
    )["taskDefinition"]["taskDefinitionArn"]
    create_service(setup_ecs, "test-cluster", "web", arn)
    registry.push("team/app", "amd", platforms=[("linux", "amd64")])
    registry.push("team/app", "arm", platforms=[("linux", "arm64")])
    refused = update(http, registry.image("team/app", "arm"))
    assert refused.status_code == 422
    assert "offers linux/arm64, not linux/amd64" in refused.json_body["Message"]
    assert update(http, registry.image("team/app", "amd")).status_code == 200


def test_a_failing_registry_refuses_under_require_and_warns_under_warn(
    http: Any, setup_ecs: Any, workload: Workload, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.failing = True
    refused = update(http, registry.image("team/app", "2.0"))
    assert refused.status_code == 502
    assert refused.json_body["Message"].startswith(
        f"could not verify, so nothing was changed: container 'app': image {registry.image('team/app', '2.0')}: "
        f"registry {registry.host}: it answered 500"
    )
    assert app_image(setup_ecs, workload) == f"{WEB}:1.0"
    monkeypatch.setenv("VERIFY_IMAGES", "warn")
    let_through = update(http, registry.image("team/app", "2.0"))
    assert let_through.status_code == 200
    [warning] = let_through.json_body["warnings"]
    assert warning.startswith(
        f"not verified: container 'app': image {registry.image('team/app', '2.0')}: registry {registry.host}"
    )
    assert records_of("test-cluster", "web")[0]["warnings"] == [warning]
    assert let_through.json_body["containers"][0]["digest"] is None


def test_a_registry_that_cannot_be_reached_is_named(http: Any, setup_ecs: Any, workload: Workload) -> None:
    from scripts.local_aws import free_port

    answer = update(http, f"127.0.0.1:{free_port()}/team/app:1")
    assert answer.status_code == 502
    assert "it could not be reached" in answer.json_body["Message"]


def test_off_checks_nothing(
    http: Any, setup_ecs: Any, workload: Workload, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERIFY_IMAGES", "off")
    assert update(http, registry.image("team/app", "never-pushed")).status_code == 200
    assert registry.seen == []


def test_private_registry_credentials_come_from_the_containers_repository_credentials(
    setup_ecs: Any, http: Any, registry: Registry
) -> None:
    registry.auth = "basic"
    secret = (
        clients.session()
        .client("secretsmanager", region_name=REGION)
        .create_secret(Name="registry/robot", SecretString=json.dumps({"username": "robot", "password": "s3cret"}))[
            "ARN"
        ]
    )
    setup_ecs.create_cluster(clusterName="test-cluster")
    container = {
        **rich_container("app", f"{registry.host}/team/app:1"),
        "repositoryCredentials": {"credentialsParameter": secret},
    }
    create_service(setup_ecs, "test-cluster", "web", register(setup_ecs, [container]))
    digest = registry.push("team/app", "2.0")
    answer = update(http, registry.image("team/app", "2.0"))
    assert answer.status_code == 200, answer.json_body
    assert answer.json_body["containers"][0]["digest"] == digest
    assert (registry.seen[-1].authorization or "").startswith("Basic ")


# -- every write path refuses a missing image with 422 and writes nothing ---------------------------


def test_a_fan_out_with_one_missing_image_names_it_and_moves_nothing(
    http: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    create_service(setup_ecs, "test-cluster", "api", workload.running_arn)
    ecr_push("1.1")
    body = {
        "cluster": "test-cluster",
        "services": ["web", "api"],
        "containers": {"app": f"{WEB}:1.1", "worker": f"{ECR}/worker:7"},
    }
    answer = post(http, "/update", body)
    assert answer.status_code == 422
    assert f"service 'web': container 'worker': image {ECR}/worker:7 does not exist" in answer.json_body["Message"]
    assert "service 'api': container 'worker'" in answer.json_body["Message"]
    assert "RegisterTaskDefinition" not in calls


def test_apply_checks_only_what_changes(
    http: Any, setup_ecs: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = http.get(
        "/services/test-cluster/web/description", headers={"x-api-key": "test-key-0123456789"}
    ).json_body
    # An export applies as a no-op: its images (never pushed to moto's ECR) are not looked up at all, not
    # even ahead of the reads, as /update's are.
    started: list[str] = []
    prefetch = verify.Verifier.prefetch
    monkeypatch.setattr(
        verify.Verifier, "prefetch", lambda self, images: prefetch(self, [started.append(str(i)) or i for i in images])
    )
    assert post(http, "/apply", {"descriptions": [exported]}).status_code == 200
    assert started == []
    assert post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{WEB}:1.0"}).status_code
    assert started == [f"{WEB}:1.0"]
    edited = {**exported, "containers": {**exported["containers"], "app": f"{WEB}:8.8.8"}}
    answer = post(http, "/apply", {"descriptions": [edited]})
    assert answer.status_code == 422
    assert f"service 'web': container 'app': image {WEB}:8.8.8 does not exist" in answer.json_body["Message"]


def test_a_dry_run_reports_every_check(http: Any, setup_ecs: Any, workload: Workload) -> None:
    digest = ecr_push("1.1")
    answer = update(http, f"{WEB}:1.1", dryRun=True)
    assert answer.status_code == 200
    assert answer.json_body["verification"] == [
        {"check": "image", "target": f"app: {WEB}:1.1", "ok": True, "detail": digest},
        {"check": "platform", "target": f"app: {WEB}:1.1", "ok": True, "detail": "a single-platform image"},
    ]
    refused = update(http, f"{WEB}:1.9", dryRun=True)
    assert refused.status_code == 422  # a dry run answers what the request would


def test_a_rollback_to_a_named_revision_checks_its_images_and_its_new_secrets(
    http: Any, setup_ecs: Any, workload: Workload
) -> None:
    ssm = clients.session().client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/web/db-url", Value="x", Type="SecureString")
    with_secrets = register(
        setup_ecs,
        [
            {
                **rich_container("app", f"{WEB}:1.0"),
                "secrets": [
                    {"name": "DB_URL", "valueFrom": "/web/db-url"},
                    {
                        "name": "API_TOKEN",
                        "valueFrom": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:web/api-AbCdEf",
                    },
                ],
            },
            rich_container("worker", "registry.example.com:5000/team/worker:3"),
        ],
    )
    answer = post(http, "/rollback", {"cluster": "test-cluster", "service": "web", "taskDefinition": with_secrets})
    assert answer.status_code == 422
    message = answer.json_body["Message"]
    assert "container 'app': secret 'API_TOKEN' (arn:aws:secretsmanager:" in message
    assert "DB_URL" not in message  # it exists
    assert app_image(setup_ecs, workload) == f"{WEB}:1.0"
    clients.session().client("secretsmanager", region_name=REGION).create_secret(Name="web/api", SecretString="t")
    arn = clients.session().client("secretsmanager", region_name=REGION).describe_secret(SecretId="web/api")["ARN"]
    fixed = register(
        setup_ecs,
        [
            {
                **rich_container("app", f"{WEB}:1.0"),
                "secrets": [{"name": "API_TOKEN", "valueFrom": arn}, {"name": "GONE", "valueFrom": "/web/gone"}],
            },
            rich_container("worker", "registry.example.com:5000/team/worker:3"),
        ],
    )
    answer = post(http, "/rollback", {"cluster": "test-cluster", "service": "web", "taskDefinition": fixed})
    assert answer.status_code == 422
    assert answer.json_body["Message"].endswith("container 'app': secret 'GONE' (/web/gone) does not exist")
    assert "API_TOKEN" not in answer.json_body["Message"]


def test_a_faked_push_moves_nothing(http: Any, push_queue: PushQueue, workload: Workload) -> None:
    ecr_push("1.4.2")
    answer = post(http, "/hooks/push", {"repository": WEB, "tag": "6.6.6"})
    assert answer.status_code == 422
    assert answer.json_body["Message"] == (
        f"the pushed image {WEB}:6.6.6 does not exist (ECR ImageNotFound: Requested image not found); "
        "nothing was queued"
    )
    assert push_queue.waiting() == 0


def test_an_ecr_push_is_verified_when_it_deploys(
    lambda_time: None,  # before the test client: the functions get their configured time
    app_client: Any,
    http: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    ecs_deployments: EcsDeployments,
    workload: Workload,
) -> None:
    from tests.triggers.test_push import ecr_event

    create_follower(setup_ecs)
    index_followers(app_client)
    # ECR says 1.4.3 was pushed, but it is not there (deleted since): the deployment is refused for good.
    app_client.lambda_.invoke("registry_push", ecr_event(tag="1.4.3", digest=None))
    deliver(app_client, push_queue)
    [record] = records_of("test-cluster", "shop")
    assert record["outcome"] == "FAILED"
    assert f"image {WEB}:1.4.3 does not exist" in record["outcomeReason"]
    assert push_queue.dead() == []  # a final refusal, not retried into the dead-letter queue


def test_the_pipeline_action_fails_its_job_on_a_missing_image(
    lambda_time: None, app_client: Any, codepipeline: CodePipeline, workload: Workload
) -> None:
    from tests.triggers.test_pipeline import artifact, job_event, new_job

    definitions = artifact({"imagedefinitions.json": [{"name": "app", "imageUri": f"{WEB}:5.5.5"}]})
    job = new_job()
    codepipeline.expect_failure(job)
    app_client.lambda_.invoke(
        "pipeline_deploy", job_event(job, {"cluster": "test-cluster", "service": "web"}, definitions)
    )
    failure = codepipeline.last()["failureDetails"]
    assert failure["type"] == "JobFailed"
    assert f"image {WEB}:5.5.5 does not exist" in failure["message"]
