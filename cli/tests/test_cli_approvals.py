"""`approvals`, `approve`, `reject`, and `deploy --wait` through an approval, against a scripted server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import ScriptedServer, run_cli

KEY = "sk-approvals-0123456789abcdef"
ID = "3f9c0d6a2b1e4c58"
LEADS = "arn:aws:iam::123456789012:role/web-leads"
DEPLOY = ("deploy", "--cluster", "prod", "--service", "web", "--image", "repo/web:1.4.3")


def approval(status: str = "PENDING", approvals: int = 0, **more: Any) -> dict[str, Any]:
    """The service's approval of web's change to repo/web:1.4.3."""
    return {
        "id": ID,
        "kind": "deploy",
        "status": status,
        "cluster": "prod",
        "clusterIdentifier": "prod",
        "services": [
            {
                "service": "web",
                "serviceArn": "arn:aws:ecs:eu-west-1:123456789012:service/prod/web",
                "taskDefinition": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:6",
                "containers": [{"name": "app", "previousImage": "repo/web:1.4.2", "image": "repo/web:1.4.3"}],
            }
        ],
        "required": 1,
        "approvals": approvals,
        "approvedBy": ["erin"] if approvals else [],
        "votes": [],
        "requestedBy": "ci",
        "requestedAt": "2026-12-06T10:00:00.000Z",
        "deadline": "2026-12-07T10:00:00.000Z",
        "action": "update",
        "endedAt": None,
        "reason": None,
        "deployments": [],
        **more,
    }


ASKED = {
    "Code": "ApprovalRequired",
    "Message": f"the change of service 'web' waits for 1 approval: {ID}",
    "approval": approval(),
}


def cli(server: ScriptedServer, workdir: Path, *args: str) -> Any:
    env = {"ECS_IMAGE_UPDATER_URL": server.url, "ECS_IMAGE_UPDATER_API_KEY": KEY}
    return run_cli(*args, env=env, cwd=workdir)


def test_deploy_without_wait_says_the_change_waits_and_how_to_approve_it(server: ScriptedServer, workdir: Path) -> None:
    server.answer(202, ASKED)
    result = cli(server, workdir, *DEPLOY)
    assert result.returncode == 0, result.output
    assert result.stdout.splitlines() == [ASKED["Message"], f"Approve it with: ecs-image-updater approve {ID}"]
    assert len(server.received) == 1


def test_deploy_wait_waits_through_the_approval_saying_whom_for_then_follows_the_deployment(
    server: ScriptedServer, workdir: Path
) -> None:
    server.answer(202, ASKED)
    server.answer(200, approval(approvers=[LEADS]))
    deployed = approval("DEPLOYED", 1, approvers=[LEADS], deployments=[{"service": "web", "deploymentId": "ecs-svc/9"}])
    server.answer(200, deployed)
    server.answer(
        200,
        {
            "cluster": "prod",
            "service": "web",
            "deployments": [{"id": "ecs-svc/9", "runningCount": 2, "desiredCount": 2}],
            "deployment": {"id": "ecs-svc/9", "outcome": "COMPLETED", "reason": None},
        },
    )
    result = cli(server, workdir, *DEPLOY, "--wait")
    assert result.returncode == 0, result.output
    assert (
        f"Waiting for approval {ID} of prod/web (0 of 1 approvals, until 2026-12-07T10:00:00.000Z) from {LEADS}, "
        f"not ci: ecs-image-updater approve {ID}"
    ) in result.stdout
    assert f"Approval {ID} of prod/web: DEPLOYED, 1 of 1 approvals (by erin)" in result.stdout
    assert [r.path for r in server.received] == [
        "/update",
        f"/approvals/{ID}",
        f"/approvals/{ID}",
        "/services/prod/web?deployment=ecs-svc%2F9",
    ]


def test_deploy_wait_fails_when_the_approval_is_rejected(server: ScriptedServer, workdir: Path) -> None:
    server.answer(202, ASKED)
    server.answer(200, approval("REJECTED", reason="rejected by erin: not on a Friday"))
    result = cli(server, workdir, *DEPLOY, "--wait")
    assert result.returncode == 1, result.output
    assert f"approval {ID} ended REJECTED: rejected by erin: not on a Friday" in result.stderr


def test_approvals_lists_what_the_caller_may_vote_on(server: ScriptedServer, workdir: Path) -> None:
    server.answer(200, {"approvals": [approval()]})
    result = cli(server, workdir, "approvals", "--cluster", "prod")
    assert result.returncode == 0, result.output
    assert server.received[0].path == "/approvals?cluster=prod"
    header, row = result.stdout.splitlines()
    assert header.split() == ["ID", "SERVICE", "IMAGES", "VOTES", "REQUESTED", "BY", "DEADLINE", "STATUS"]
    assert row.split() == [ID, "prod/web", "app=repo/web:1.4.3", "0/1", "ci", "2026-12-07T10:00:00.000Z", "PENDING"]


def test_a_pause_is_listed_with_the_stage_ecs_waits_at_and_approving_says_what_ecs_was_told(
    server: ScriptedServer, workdir: Path
) -> None:
    arn = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/r2Q7"
    hook = {"serviceDeploymentArn": arn, "hookId": "h-1", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT"}
    server.answer(200, {"approvals": [approval(kind="pause", hook=hook)]})
    listed = cli(server, workdir, "approvals")
    assert listed.returncode == 0, listed.output
    row = listed.stdout.splitlines()[1].split()
    assert row[2:4] == ["paused-at:POST_TEST_TRAFFIC_SHIFT", "app=repo/web:1.4.3"]
    told = {"arn": arn, "hookId": "h-1", "action": "CONTINUE"}
    server.answer(200, {"approval": approval("CONTINUED", 1, kind="pause", hook=hook), "serviceDeployment": told})
    approved = cli(server, workdir, "approve", ID)
    assert approved.returncode == 0, approved.output
    assert approved.stdout.splitlines() == [
        f"Approval {ID} of prod/web: CONTINUED, 1 of 1 approvals (by erin)",
        "ECS was told to CONTINUE service deployment r2Q7",
    ]


def test_approve_sends_the_decision_and_shows_the_deployment_it_made(server: ScriptedServer, workdir: Path) -> None:
    deployment = {
        "changed": True,
        "cluster": "prod",
        "dryRun": False,
        "batchId": "b",
        "services": [
            {
                "changed": True,
                "cluster": "prod",
                "service": "web",
                "taskDefinition": {"family": "web", "revision": 7},
                "previousTaskDefinition": {"family": "web", "revision": 6},
                "containers": [{"name": "app", "previousImage": "repo/web:1.4.2", "image": "repo/web:1.4.3"}],
                "deployment": {"id": "ecs-svc/9"},
            }
        ],
    }
    server.answer(200, {"approval": approval("DEPLOYED", 1), "deployment": deployment})
    result = cli(server, workdir, "approve", ID, "--comment", "release notes read")
    assert result.returncode == 0, result.output
    [request] = server.received
    assert (request.method, request.path) == ("POST", f"/approvals/{ID}")
    assert json.loads(request.body) == {"decision": "approve", "comment": "release notes read"}
    assert result.stdout.splitlines()[0] == f"Approval {ID} of prod/web: DEPLOYED, 1 of 1 approvals (by erin)"
    assert "ecs-svc/9" in result.stdout


def test_reject_and_a_refused_vote(server: ScriptedServer, workdir: Path) -> None:
    server.answer(
        403, {"Code": "ForbiddenError", "Message": "principal ci requested this change and cannot approve it"}
    )
    refused = cli(server, workdir, "approve", ID)
    assert refused.returncode == 3
    assert "cannot approve it" in refused.stderr
    server.answer(200, {"approval": approval("REJECTED", reason="rejected by erin")})
    rejected = cli(server, workdir, "reject", ID)
    assert rejected.returncode == 0, rejected.output
    assert json.loads(server.received[-1].body) == {"decision": "reject"}
    assert "REJECTED" in rejected.stdout


def test_an_id_that_is_not_one_is_refused_before_anything_is_sent(server: ScriptedServer, workdir: Path) -> None:
    result = cli(server, workdir, "approve", "../whoami")
    assert result.returncode == 3
    assert "is not an approval id" in result.stderr
    assert server.received == []
