"""The update against moto, through the domain layer: calls made, fidelity, choice, errors, cleanup."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib.aws import budget, clients
from chalicelib.aws.ecs import check_updatable
from chalicelib.core import taskdef
from chalicelib.core.errors import (
    AmbiguousContainerError,
    AwsCallError,
    AwsThrottledError,
    AwsTimeoutError,
    ClusterNotFoundError,
    ContainerNotFoundError,
    ServiceNotFoundError,
    ServiceNotUpdatableError,
)
from chalicelib.core.images import parse_image
from chalicelib.core.requests import UpdateRequest
from chalicelib.deploy.update import update_image
from tests.conftest import (
    ECR,
    RICH_TAGS,
    Workload,
    active_revisions,
    create_service,
    register,
    rich_container,
    running_task_definition,
)
from tests.faults import ENDPOINT, AttemptFaults, VirtualClock, client_error, error_answer, fail_call

CHANGE_CALLS = ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
NOOP_CALLS = ["DescribeServices", "DescribeTaskDefinition"]


def request_for(workload: Workload, image: str, **options: Any) -> UpdateRequest:
    return UpdateRequest(workload.cluster, workload.service, parse_image(image), **options)


def comparable(task_definition: dict[str, Any]) -> dict[str, Any]:
    """A task definition without the fields ECS sets itself, and without its tags (checked apart)."""
    return {k: v for k, v in task_definition.items() if k not in taskdef.READ_ONLY_FIELDS | {"tags"}}


def test_change_makes_exactly_four_calls(ecs: Any, workload: Workload, calls: list[str]) -> None:
    update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))
    assert calls == CHANGE_CALLS


def test_change_copies_every_field_and_tag_and_changes_only_the_image(
    ecs: Any, setup_ecs: Any, workload: Workload
) -> None:
    before = running_task_definition(setup_ecs, workload)

    result = update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    after = running_task_definition(setup_ecs, workload)
    assert after["taskDefinitionArn"] == result.task_definition.arn != before["taskDefinitionArn"]
    assert taskdef.diff(comparable(before), comparable(after)) == [
        taskdef.FieldChange("containerDefinitions[app].image", f"{ECR}/web:1.0", f"{ECR}/web:1.1")
    ]
    assert after["tags"] == [*RICH_TAGS, {"key": "previous-task-definition", "value": workload.running_arn}]


def test_change_result_names_both_revisions_and_the_container(ecs: Any, workload: Workload) -> None:
    result = update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))
    assert result.changed is True
    assert (result.cluster, result.service, result.service_status) == ("test-cluster", "web", "ACTIVE")
    assert (result.task_definition.family, result.task_definition.revision) == ("web", 2)
    assert result.previous_task_definition is not None
    assert result.previous_task_definition.arn == workload.running_arn
    assert [c.as_dict() for c in result.containers] == [
        {"name": "app", "previousImage": f"{ECR}/web:1.0", "image": f"{ECR}/web:1.1", "digest": None}
    ]


def test_base_is_the_running_revision_not_the_newest(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    unreleased = register(
        setup_ecs, [rich_container("app", f"{ECR}/web:9.9-broken"), rich_container("worker", "other/worker:1")]
    )
    result = update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    running = running_task_definition(setup_ecs, workload)
    assert result.previous_task_definition is not None
    assert result.previous_task_definition.arn == workload.running_arn != unreleased
    assert running["revision"] == 3
    images = taskdef.container_images(running)
    assert images == {"app": f"{ECR}/web:1.1", "worker": "registry.example.com:5000/team/worker:3"}


def test_same_image_is_a_noop_with_two_calls(ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]) -> None:
    result = update_image(ecs, request_for(workload, f"{ECR}/web:1.0"))

    assert calls == NOOP_CALLS
    assert result.changed is False
    assert result.previous_task_definition is None
    assert result.task_definition.arn == workload.running_arn
    assert result.deployment is None
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_force_new_deployment_redeploys_the_running_revision_with_three_calls(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    sent: list[dict[str, Any]] = []
    ecs.meta.events.register("before-parameter-build.ecs.UpdateService", lambda params, **_: sent.append(dict(params)))

    result = update_image(ecs, request_for(workload, f"{ECR}/web:1.0", force_new_deployment=True))

    assert calls == [*NOOP_CALLS, "UpdateService"]
    assert sent[0]["forceNewDeployment"] is True
    assert "taskDefinition" not in sent[0]
    assert result.changed is False
    assert result.deployment is not None
    assert result.deployment["status"] == "PRIMARY"
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_force_new_deployment_is_not_sent_when_the_image_changes(ecs: Any, workload: Workload) -> None:
    sent: list[dict[str, Any]] = []
    ecs.meta.events.register("before-parameter-build.ecs.UpdateService", lambda params, **_: sent.append(dict(params)))
    update_image(ecs, request_for(workload, f"{ECR}/web:1.1", force_new_deployment=True))
    assert "forceNewDeployment" not in sent[0]


def test_named_container_is_the_only_one_changed(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    update_image(ecs, request_for(workload, "registry.example.com:5000/team/worker:4", container="worker"))
    images = taskdef.container_images(running_task_definition(setup_ecs, workload))
    assert images == {"app": f"{ECR}/web:1.0", "worker": "registry.example.com:5000/team/worker:4"}


def test_every_container_from_the_requested_repository_changes(ecs: Any, setup_ecs: Any) -> None:
    setup_ecs.create_cluster(clusterName="c")
    arn = register(
        setup_ecs,
        [
            rich_container("app", f"{ECR}/web:1.0"),
            rich_container("migrate", f"{ECR}/web:1.0"),
            rich_container("worker", "other/worker:1"),
        ],
    )
    create_service(setup_ecs, "c", "svc", arn)
    result = update_image(ecs, UpdateRequest("c", "svc", parse_image(f"{ECR}/web:2.0")))
    assert [c.name for c in result.containers] == ["app", "migrate"]
    service = setup_ecs.describe_services(cluster="c", services=["svc"])["services"][0]
    described = setup_ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert taskdef.container_images(described) == {
        "app": f"{ECR}/web:2.0",
        "migrate": f"{ECR}/web:2.0",
        "worker": "other/worker:1",
    }


def test_single_container_changes_to_any_repository(ecs: Any, setup_ecs: Any) -> None:
    setup_ecs.create_cluster(clusterName="c")
    create_service(setup_ecs, "c", "solo", register(setup_ecs, [rich_container("app", "old/name:1")]))
    result = update_image(ecs, UpdateRequest("c", "solo", parse_image("new/name:2")))
    assert [c.as_dict() for c in result.containers] == [
        {"name": "app", "previousImage": "old/name:1", "image": "new/name:2", "digest": None}
    ]


def test_unmatched_repository_writes_nothing(ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]) -> None:
    with pytest.raises(AmbiguousContainerError, match="app, worker"):
        update_image(ecs, request_for(workload, "elsewhere/thing:1"))
    assert calls == NOOP_CALLS
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_unknown_container_writes_nothing(ecs: Any, workload: Workload, calls: list[str]) -> None:
    with pytest.raises(ContainerNotFoundError, match=r"'sidecar'.*app, worker"):
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1", container="sidecar"))
    assert calls == NOOP_CALLS


def test_digest_reference_is_deployed_as_repo_at_digest(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    digest = "sha256:" + "0f" * 32
    result = update_image(ecs, request_for(workload, f"{ECR}/web@{digest}"))
    assert result.containers[0].image == f"{ECR}/web@{digest}"
    assert taskdef.container_images(running_task_definition(setup_ecs, workload))["app"] == f"{ECR}/web@{digest}"


def test_arns_are_accepted_for_cluster_and_service(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    service = setup_ecs.describe_services(cluster=workload.cluster, services=[workload.service])["services"][0]
    request = UpdateRequest(service["clusterArn"], service["serviceArn"], parse_image(f"{ECR}/web:1.1"))
    result = update_image(ecs, request)
    assert (result.cluster, result.service, result.changed) == ("test-cluster", "web", True)


def test_missing_cluster(ecs: Any, workload: Workload) -> None:
    with pytest.raises(ClusterNotFoundError, match="'nope'"):
        update_image(ecs, UpdateRequest("nope", "web", parse_image("repo:1")))


def test_missing_service(ecs: Any, workload: Workload) -> None:
    with pytest.raises(ServiceNotFoundError, match=r"'ghost'.*'test-cluster'"):
        update_image(ecs, UpdateRequest(workload.cluster, "ghost", parse_image("repo:1")))


def test_inactive_service_is_refused_before_any_write(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    setup_ecs.update_service(cluster=workload.cluster, service=workload.service, desiredCount=0)
    setup_ecs.delete_service(cluster=workload.cluster, service=workload.service)
    with pytest.raises(ServiceNotUpdatableError, match="INACTIVE"):
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))
    assert calls == ["DescribeServices"]


def test_code_deploy_service_is_refused_before_any_write(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    create_service(
        setup_ecs, workload.cluster, "blue-green", workload.running_arn, deploymentController={"type": "CODE_DEPLOY"}
    )
    with pytest.raises(ServiceNotUpdatableError, match="CODE_DEPLOY"):
        update_image(ecs, UpdateRequest(workload.cluster, "blue-green", parse_image(f"{ECR}/web:1.1")))
    assert calls == ["DescribeServices"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        ({"serviceName": "web", "status": "DRAINING"}, "web' is DRAINING, not ACTIVE"),
        ({"serviceName": "web", "status": "INACTIVE"}, "web' is INACTIVE, not ACTIVE"),
        ({"serviceName": "web", "status": "ACTIVE", "deploymentController": {"type": "EXTERNAL"}}, "EXTERNAL"),
        ({"serviceName": "web", "status": "ACTIVE", "deploymentController": {"type": "CODE_DEPLOY"}}, "CODE_DEPLOY"),
    ],
)
def test_services_that_cannot_take_a_new_revision(service: dict[str, Any], reason: str) -> None:
    with pytest.raises(ServiceNotUpdatableError, match=reason):
        check_updatable(service)


def test_active_ecs_controlled_service_can_be_updated() -> None:
    check_updatable({"serviceName": "web", "status": "ACTIVE", "deploymentController": {"type": "ECS"}})
    check_updatable({"serviceName": "web", "status": "ACTIVE"})


def test_failed_update_service_deregisters_the_new_revision(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    fail_call(ecs, "UpdateService", lambda: client_error("UpdateService", "AccessDeniedException", "not allowed"))

    with pytest.raises(AwsCallError) as caught:
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert caught.value.step == "UpdateService"
    assert "AccessDeniedException: not allowed" in caught.value.message
    assert "web:2 was deregistered" in caught.value.message
    assert "the service was still on web:1 when checked" in caught.value.message
    assert calls == [*CHANGE_CALLS, "DescribeServices", "DeregisterTaskDefinition"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn


def test_failed_cleanup_is_reported_for_a_person_to_finish(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    fail_call(ecs, "UpdateService", lambda: client_error("UpdateService", "AccessDeniedException"))
    fail_call(
        ecs, "DeregisterTaskDefinition", lambda: client_error("DeregisterTaskDefinition", "AccessDeniedException")
    )

    with pytest.raises(AwsCallError, match=r"web:2 could not be deregistered.*deregister it by hand"):
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))


def test_unverifiable_update_leaves_the_revision_registered(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    fail_call(ecs, "UpdateService", lambda: client_error("UpdateService", "InternalFailure", status=500))
    described: list[str] = []

    def fail_second_describe(**_: Any) -> None:
        described.append("DescribeServices")
        if len(described) > 1:
            raise client_error("DescribeServices", "AccessDeniedException")

    ecs.meta.events.register("before-call.ecs.DescribeServices", fail_second_describe)

    with pytest.raises(AwsCallError, match="could not check whether the service took revision web:2"):
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))
    assert len(active_revisions(setup_ecs, "web")) == 2


def test_update_that_took_effect_despite_a_timeout_is_reported_as_done(
    ecs: Any, setup_ecs: Any, workload: Workload
) -> None:
    faults = AttemptFaults(ecs)

    def applied_but_unanswered(_attempt: int) -> None:
        newest = active_revisions(setup_ecs, "web")[-1]
        setup_ecs.update_service(cluster=workload.cluster, service=workload.service, taskDefinition=newest)
        raise ReadTimeoutError(endpoint_url=ENDPOINT)

    faults.on("UpdateService", applied_but_unanswered)

    result = update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert result.changed is True
    running = running_task_definition(setup_ecs, workload)
    assert running["taskDefinitionArn"] == result.task_definition.arn
    assert running["status"] == "ACTIVE"


def test_throttling_is_retried_then_reported(
    ecs: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(ecs, virtual_clock)
    faults.on("RegisterTaskDefinition", lambda _attempt: error_answer("ThrottlingException", "Rate exceeded"))

    with pytest.raises(AwsThrottledError) as caught:
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert caught.value.step == "RegisterTaskDefinition"
    assert faults.attempts.count("RegisterTaskDefinition") == clients.TOTAL_MAX_ATTEMPTS
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_timeouts_on_every_attempt_end_in_a_504_naming_the_call(
    ecs: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(ecs, virtual_clock)
    faults.time_out("DescribeServices")

    with pytest.raises(AwsTimeoutError) as caught:
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert caught.value.step == "DescribeServices"
    assert faults.attempts == ["DescribeServices"] * clients.TOTAL_MAX_ATTEMPTS


def test_timed_out_update_service_is_not_retried_past_the_budget_and_leaves_no_orphan(
    ecs: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(ecs, virtual_clock)
    faults.time_out("DescribeServices", attempts={1, 2})  # 8 s of the 17 s budget gone
    faults.time_out("UpdateService")  # its first attempt ends past 12 s: no room for a retry

    with pytest.raises(AwsTimeoutError) as caught:
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert caught.value.step == "UpdateService"
    assert faults.attempts.count("UpdateService") == 1
    assert "web:2 was deregistered" in caught.value.message
    assert "still on web:1 when checked" in caught.value.message
    assert virtual_clock.now <= budget.MAIN_SECONDS
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_budget_refuses_an_attempt_that_could_not_finish(
    ecs: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(ecs, virtual_clock)
    faults.time_out("DescribeServices", attempts={1, 2})
    faults.time_out("DescribeTaskDefinition", attempts={1})
    # 12 s gone after two calls; a retry of DescribeTaskDefinition would need 1 s of
    # back-off and a 4 s attempt, which would end past the 17 s deadline.

    with pytest.raises(AwsTimeoutError) as caught:
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert caught.value.step == "DescribeTaskDefinition"
    assert faults.attempts.count("DescribeTaskDefinition") == 1
    assert virtual_clock.now <= budget.MAIN_SECONDS


def test_register_is_not_retried_when_it_may_have_been_applied(
    ecs: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(ecs, virtual_clock)
    faults.time_out("RegisterTaskDefinition")

    with pytest.raises(AwsTimeoutError) as caught:
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert faults.attempts.count("RegisterTaskDefinition") == 1
    assert caught.value.outcome_unknown is True
    assert "ECS may have registered a revision of family 'web' anyway" in caught.value.message


def test_register_is_retried_when_throttled(
    ecs: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(ecs, virtual_clock)
    faults.on("RegisterTaskDefinition", lambda n: error_answer("ThrottlingException") if n == 1 else None)

    result = update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert faults.attempts.count("RegisterTaskDefinition") == 2
    assert active_revisions(setup_ecs, "web") == [workload.running_arn, result.task_definition.arn]


def test_slow_throttling_everywhere_stays_within_25_seconds_and_reports_429(
    ecs: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(ecs, virtual_clock)
    almost_a_timeout = budget.ATTEMPT_SECONDS - 0.01
    faults.throttle("UpdateService", almost_a_timeout)
    faults.throttle("DeregisterTaskDefinition", almost_a_timeout)

    with pytest.raises(AwsThrottledError) as caught:
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert caught.value.step == "UpdateService"
    assert "web:2 could not be deregistered" in caught.value.message
    assert virtual_clock.now <= budget.MAIN_SECONDS + budget.CLEANUP_SECONDS <= 25


@pytest.mark.parametrize("operation", CHANGE_CALLS)
def test_slow_failures_on_every_attempt_never_outlast_25_seconds(
    ecs: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock, operation: str
) -> None:
    faults = AttemptFaults(ecs, virtual_clock)
    slow = budget.ATTEMPT_SECONDS - 0.01
    for earlier in CHANGE_CALLS[: CHANGE_CALLS.index(operation)]:
        faults.throttle(earlier, 2.0, attempts={1})  # each earlier call loses time to a slow throttle
    faults.throttle(operation, slow)

    with pytest.raises((AwsThrottledError, AwsTimeoutError)) as caught:
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1"))

    assert caught.value.step == operation
    assert virtual_clock.now <= 25 < budget.API_GATEWAY_TIMEOUT_SECONDS
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_client_has_bounded_retries_and_short_timeouts(ecs: Any) -> None:
    config = ecs.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": clients.TOTAL_MAX_ATTEMPTS}
    assert (config.connect_timeout, config.read_timeout) == (
        budget.CONNECT_TIMEOUT_SECONDS,
        budget.READ_TIMEOUT_SECONDS,
    )


def test_client_is_created_once_and_reused(moto_world: None) -> None:
    assert clients.ecs_client() is clients.ecs_client()


def test_dry_run_writes_nothing_and_shows_the_image_diff(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    result = update_image(ecs, request_for(workload, f"{ECR}/web:1.1", dry_run=True))

    assert calls == NOOP_CALLS
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]
    body = result.as_dict()
    assert body["dryRun"] is True
    assert body["changed"] is True
    assert body["diff"] == [
        {"path": "containerDefinitions[app].image", "from": f"{ECR}/web:1.0", "to": f"{ECR}/web:1.1"}
    ]
    assert body["taskDefinition"] == {
        "arn": None,
        "family": "web",
        "revision": None,
        "status": None,
        "registeredAt": None,
    }
    assert body["previousTaskDefinition"]["arn"] == workload.running_arn
    assert body["deployment"] is None


def test_dry_run_of_a_noop_has_an_empty_diff(ecs: Any, workload: Workload) -> None:
    body = update_image(ecs, request_for(workload, f"{ECR}/web:1.0", dry_run=True)).as_dict()
    assert (body["changed"], body["dryRun"], body["diff"]) == (False, True, [])


def test_dry_run_with_force_new_deployment_does_not_redeploy(ecs: Any, workload: Workload, calls: list[str]) -> None:
    update_image(ecs, request_for(workload, f"{ECR}/web:1.0", dry_run=True, force_new_deployment=True))
    assert calls == NOOP_CALLS


def test_dry_run_runs_every_check(ecs: Any, workload: Workload) -> None:
    with pytest.raises(ContainerNotFoundError):
        update_image(ecs, request_for(workload, f"{ECR}/web:1.1", dry_run=True, container="nope"))


def test_several_containers_change_in_one_revision(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    images = {"app": parse_image(f"{ECR}/web:2.0"), "worker": parse_image("registry.example.com:5000/team/worker:4")}
    result = update_image(ecs, UpdateRequest(workload.cluster, workload.service, images=images))

    assert calls == CHANGE_CALLS
    assert taskdef.container_images(running_task_definition(setup_ecs, workload)) == {
        "app": f"{ECR}/web:2.0",
        "worker": "registry.example.com:5000/team/worker:4",
    }
    assert [c.name for c in result.containers] == ["app", "worker"]


def test_unknown_name_in_the_containers_map_is_named_and_nothing_is_written(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    images = {"app": parse_image(f"{ECR}/web:2.0"), "ghost": parse_image("x:1")}
    with pytest.raises(ContainerNotFoundError, match="'ghost'"):
        update_image(ecs, UpdateRequest(workload.cluster, workload.service, images=images))
    assert calls == NOOP_CALLS
