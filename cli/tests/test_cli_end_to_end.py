"""Every command over real HTTP against `chalice local` on moto's server, the CLI run as a process.

The service's deployments complete 2 s after they start (scripts/local_ecs.py).
Every run also checks that the API key appears nowhere in what it printed.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import yaml
from conftest import (
    CLUSTER,
    IMAGE,
    SERVICE,
    CliResult,
    cli_command,
    client_environment,
    connection_env,
    run_cli,
    running_image,
)

from scripts.local_aws import LocalRun, free_port


def cli(service: LocalRun, *args: str, cwd: Path) -> CliResult:
    """Run the client against `service`; whatever it does, the key must not show."""
    result = run_cli(*args, env=connection_env(service), cwd=cwd)
    assert service.api_key not in result.output
    return result


def deploy(service: LocalRun, tag: str, *extra: str, cwd: Path) -> CliResult:
    """`deploy` of the workload's service onto IMAGE:`tag`."""
    return cli(
        service, "deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", f"{IMAGE}:{tag}", *extra, cwd=cwd
    )


def test_deploy_rolls_the_service_onto_the_image(quick_service: LocalRun, workdir: Path) -> None:
    before = running_image(quick_service)
    result = deploy(quick_service, "1.28.0", cwd=workdir)
    assert result.returncode == 0, result.output
    assert running_image(quick_service) == f"{IMAGE}:1.28.0"
    assert f"{before} → {IMAGE}:1.28.0" in result.stdout
    assert "1 service changed." in result.stdout


def test_deploy_wait_follows_the_deployment_to_completed(quick_service: LocalRun, workdir: Path) -> None:
    result = deploy(quick_service, "1.28.1", "--wait", "--timeout", "1m", cwd=workdir)
    assert result.returncode == 0, result.output
    assert "test-cluster/web: COMPLETED after" in result.stdout
    assert "IN_PROGRESS" in result.stdout  # one line per change: it was in progress first
    status = cli(quick_service, "status", CLUSTER, SERVICE, cwd=workdir)
    assert "tasks     1 running / 1 desired" in status.stdout  # the service's counts follow its completed rollout


def test_deploying_the_running_image_has_nothing_to_change_and_nothing_to_wait_for(
    quick_service: LocalRun, workdir: Path
) -> None:
    assert deploy(quick_service, "1.28.2", cwd=workdir).returncode == 0
    again = deploy(quick_service, "1.28.2", "--wait", cwd=workdir)
    assert again.returncode == 0, again.output
    assert "(no change)" in again.stdout
    assert "Nothing to wait for" in again.stdout


def test_a_dry_run_shows_the_diff_and_changes_nothing(quick_service: LocalRun, workdir: Path) -> None:
    before = running_image(quick_service)
    result = deploy(quick_service, "9.9.9", "--dry-run", "--wait", cwd=workdir)
    assert result.returncode == 0, result.output
    assert "containerDefinitions[web].image" in result.stdout
    assert f"{before} → {IMAGE}:9.9.9" in result.stdout
    assert "dry run: nothing was written" in result.stdout
    assert running_image(quick_service) == before


def test_json_prints_the_raw_answer_for_machines(quick_service: LocalRun, workdir: Path) -> None:
    result = deploy(quick_service, "1.28.3", "--json", cwd=workdir)
    assert result.returncode == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["changed"] is True
    assert answer["containers"] == [
        {
            "name": "web",
            "previousImage": answer["containers"][0]["previousImage"],
            "image": f"{IMAGE}:1.28.3",
            "digest": None,  # the run checks no image (VERIFY_IMAGES=off: see conftest.local_service)
        }
    ]
    assert answer["deployment"]["id"].startswith("ecs-svc/")


def test_json_with_wait_prints_the_answer_then_the_final_status(quick_service: LocalRun, workdir: Path) -> None:
    result = deploy(quick_service, "1.28.4", "--json", "--wait", cwd=workdir)
    assert result.returncode == 0, result.output
    answer, final = (json.loads(line) for line in result.stdout.splitlines())
    # The verdict's other fields (reason, stage, strategy, ...) depend on what the service reads from ECS.
    assert (final["deployment"]["id"], final["deployment"]["outcome"]) == (answer["deployment"]["id"], "COMPLETED")
    assert "IN_PROGRESS" in result.stderr  # progress goes to stderr, stdout stays JSON


def test_an_image_without_a_tag_is_refused_before_anything_is_sent(workdir: Path) -> None:
    nowhere = {"ECS_IMAGE_UPDATER_URL": f"http://127.0.0.1:{free_port()}", "ECS_IMAGE_UPDATER_API_KEY": "k"}
    result = run_cli("deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", IMAGE, env=nowhere, cwd=workdir)
    assert result.returncode == 3  # not 4: nothing tried to reach the (absent) service
    assert "has no tag or digest" in result.stderr


def test_an_unknown_service_is_refused_with_the_services_message(quick_service: LocalRun, workdir: Path) -> None:
    result = cli(
        quick_service, "deploy", "--cluster", CLUSTER, "--service", "ghost", "--image", f"{IMAGE}:1", cwd=workdir
    )
    assert result.returncode == 3
    assert "service 'ghost' was not found in cluster 'test-cluster'" in result.stderr


def test_several_services_move_together_or_not_at_all(quick_service: LocalRun, workdir: Path) -> None:
    before = running_image(quick_service)
    result = cli(
        quick_service, "deploy", "--cluster", CLUSTER, "--service", "web,ghost", "--image", f"{IMAGE}:7.7", cwd=workdir
    )
    assert result.returncode == 3
    assert "service 'ghost' was not found" in result.stderr
    assert "nothing was changed" in result.stderr
    assert running_image(quick_service) == before


def test_status_shows_the_service_and_its_deployments(quick_service: LocalRun, workdir: Path) -> None:
    running = running_image(quick_service)
    result = cli(quick_service, "status", CLUSTER, SERVICE, cwd=workdir)
    assert result.returncode == 0, result.output
    assert result.stdout.startswith("test-cluster/web: ACTIVE, newest deployment ")
    assert f"web        {running}" in result.stdout
    assert "ecs-svc/" in result.stdout
    as_json = json.loads(cli(quick_service, "status", CLUSTER, SERVICE, "--json", cwd=workdir).stdout)
    assert as_json["containers"] == [{"name": "web", "image": running}]


def test_status_of_an_unknown_deployment_is_refused(quick_service: LocalRun, workdir: Path) -> None:
    result = cli(quick_service, "status", CLUSTER, SERVICE, "--deployment", "ecs-svc/1", cwd=workdir)
    assert result.returncode == 3
    assert "deployment 'ecs-svc/1' is not listed by ECS" in result.stderr


def test_history_shows_when_who_the_images_and_the_outcome(quick_service: LocalRun, workdir: Path) -> None:
    before = running_image(quick_service)
    assert deploy(quick_service, "1.28.5", cwd=workdir).returncode == 0
    result = cli(quick_service, "history", CLUSTER, SERVICE, "--limit", "1", cwd=workdir)
    assert result.returncode == 0, result.output
    header, row, *rest = result.stdout.splitlines()
    assert header.split() == ["WHEN", "ACTION", "WHO", "IMAGES", "OUTCOME"]
    assert "update  local from 127.0.0.1" in row
    assert f"{before} → {IMAGE}:1.28.5" in row
    assert re.search(r"IN_PROGRESS( at [A-Z_]+)?$", row)  # with its stage where the service reports one
    assert len(rest) == 1
    assert rest[0].startswith("More: ecs-image-updater history test-cluster web --next ")
    page = json.loads(cli(quick_service, "history", CLUSTER, SERVICE, "--limit", "2", "--json", cwd=workdir).stdout)
    assert len(page["records"]) == 2
    assert page["records"][0]["containers"][0]["image"] == f"{IMAGE}:1.28.5"


def test_a_history_limit_out_of_range_is_a_usage_error(quick_service: LocalRun, workdir: Path) -> None:
    result = cli(quick_service, "history", CLUSTER, SERVICE, "--limit", "500", cwd=workdir)
    assert result.returncode == 3
    assert "from 1 to 100" in result.stderr


def test_export_prints_a_description_that_applies_as_a_no_op(quick_service: LocalRun, workdir: Path) -> None:
    exported = cli(quick_service, "export", CLUSTER, SERVICE, cwd=workdir)
    assert exported.returncode == 0, exported.output
    description = yaml.safe_load(exported.stdout)
    assert description == {"cluster": CLUSTER, "service": SERVICE, "containers": {"web": running_image(quick_service)}}
    (workdir / "web.yaml").write_text(exported.stdout)
    applied = cli(quick_service, "apply", "web.yaml", "--wait", cwd=workdir)
    assert applied.returncode == 0, applied.output
    assert "1 already up to date" in applied.stdout


def test_export_to_a_json_file(quick_service: LocalRun, workdir: Path) -> None:
    result = cli(quick_service, "export", CLUSTER, SERVICE, "-o", "web.json", cwd=workdir)
    assert result.returncode == 0, result.output
    assert json.loads((workdir / "web.json").read_text())["containers"] == {"web": running_image(quick_service)}
    assert "Wrote web.json: test-cluster/web, 1 container(s)." in result.stdout


def test_the_make_dev_walkthrough_export_edit_apply_and_back(quick_service: LocalRun, workdir: Path) -> None:
    assert deploy(quick_service, "1.27.5", cwd=workdir).returncode == 0
    assert cli(quick_service, "export", CLUSTER, SERVICE, "-o", "web.yaml", cwd=workdir).returncode == 0
    shutil.copy(workdir / "web.yaml", workdir / "web-before.yaml")
    edited = (workdir / "web.yaml").read_text().replace(":1.27.5", ":1.28.6")
    assert edited != (workdir / "web-before.yaml").read_text()
    (workdir / "web.yaml").write_text(edited)

    preview = cli(quick_service, "apply", "web.yaml", "--dry-run", cwd=workdir)
    assert f"{IMAGE}:1.27.5 → {IMAGE}:1.28.6" in preview.stdout
    assert running_image(quick_service) == f"{IMAGE}:1.27.5"

    forward = cli(quick_service, "apply", "web.yaml", "--wait", cwd=workdir)
    assert forward.returncode == 0, forward.output
    assert "test-cluster/web: COMPLETED" in forward.stdout
    assert running_image(quick_service) == f"{IMAGE}:1.28.6"

    back = cli(quick_service, "apply", "web-before.yaml", "--wait", cwd=workdir)
    assert back.returncode == 0, back.output
    assert running_image(quick_service) == f"{IMAGE}:1.27.5"


def test_apply_of_a_directory(quick_service: LocalRun, workdir: Path) -> None:
    folder = workdir / "deploy"
    folder.mkdir()
    (folder / "web.yml").write_text(f"cluster: {CLUSTER}\nservice: {SERVICE}\ncontainers:\n  web: {IMAGE}:1.28.7\n")
    result = cli(quick_service, "apply", "deploy", "--json", cwd=workdir)
    assert result.returncode == 0, result.output
    assert json.loads(result.stdout)["services"][0]["containers"][0]["image"] == f"{IMAGE}:1.28.7"
    assert running_image(quick_service) == f"{IMAGE}:1.28.7"


def test_an_apply_the_service_refuses_names_the_file(quick_service: LocalRun, workdir: Path) -> None:
    (workdir / "typo.yaml").write_text(f"cluster: {CLUSTER}\nservice: {SERVICE}\ncontainers:\n  wbe: {IMAGE}:1\n")
    result = cli(quick_service, "apply", "typo.yaml", cwd=workdir)
    assert result.returncode == 3
    assert "container 'wbe' is not in task definition" in result.stderr
    assert "(in typo.yaml)" in result.stderr


def test_rollback_goes_back_to_the_image_before_the_last_update(quick_service: LocalRun, workdir: Path) -> None:
    assert deploy(quick_service, "2.0.0", cwd=workdir).returncode == 0
    assert deploy(quick_service, "2.0.1", cwd=workdir).returncode == 0
    result = cli(quick_service, "rollback", CLUSTER, SERVICE, "--wait", cwd=workdir)
    assert result.returncode == 0, result.output
    assert f"{IMAGE}:2.0.1 → {IMAGE}:2.0.0" in result.stdout
    assert "COMPLETED" in result.stdout
    assert running_image(quick_service) == f"{IMAGE}:2.0.0"


def test_rollback_to_a_named_revision(quick_service: LocalRun, workdir: Path) -> None:
    result = cli(quick_service, "rollback", CLUSTER, SERVICE, "--to", "web:1", cwd=workdir)
    assert result.returncode == 0, result.output
    assert running_image(quick_service) == f"{quick_service.image}:1.27.0"  # the workload's first revision
    assert " web:1 " in result.stdout


def test_rollback_to_a_malformed_revision_is_refused(quick_service: LocalRun, workdir: Path) -> None:
    result = cli(quick_service, "rollback", CLUSTER, SERVICE, "--to", "web-latest", cwd=workdir)
    assert result.returncode == 3
    assert "FAMILY:REVISION" in result.stderr


def test_a_service_where_nothing_listens_is_exit_code_4(workdir: Path) -> None:
    key = "sk-unreachable-0123456789"
    nowhere = {"ECS_IMAGE_UPDATER_URL": f"http://127.0.0.1:{free_port()}", "ECS_IMAGE_UPDATER_API_KEY": key}
    result = run_cli("status", CLUSTER, SERVICE, env=nowhere, cwd=workdir)
    assert result.returncode == 4
    assert "could not reach the service" in result.stderr
    assert key not in result.output


def test_a_wrong_key_is_refused_and_not_printed(quick_service: LocalRun, workdir: Path) -> None:
    wrong = "sk-wrong-0123456789abcdef"
    result = run_cli(
        "deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", f"{IMAGE}:3", "--api-key", wrong,
        env={"ECS_IMAGE_UPDATER_URL": quick_service.api_url}, cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 3
    assert "403 ForbiddenError" in result.stderr
    assert wrong not in result.output


def test_a_usage_error_is_exit_code_3_and_keeps_the_key_out(workdir: Path) -> None:
    given = "sk-usage-0123456789abcdef"
    result = run_cli("--api-key", given, "status", CLUSTER, "--bogus", given, env={}, cwd=workdir)
    assert result.returncode == 3
    assert "unrecognized arguments" in result.stderr
    assert given not in result.output
    bad_timeout = run_cli(
        "deploy", "--cluster", "c", "--service", "s", "--image", "r:1", "--timeout", "soon", cwd=workdir
    )
    assert bad_timeout.returncode == 3
    assert "like 90s, 15m, 1h" in bad_timeout.stderr


def test_the_installed_command_documents_its_exit_codes(workdir: Path) -> None:
    command = shutil.which("ecs-image-updater", path=str(Path(cli_command()[0]).parent))
    assert command is not None, "the console script is not installed: pip install -e ./cli"
    for args in ([], ["deploy"], ["apply"]):
        shown = subprocess.run(  # noqa: S603 - the installed console script
            [command, *args, "--help"], capture_output=True, text=True, check=False, cwd=workdir
        )
        assert shown.returncode == 0
        for line in (
            "0  done",
            "1  a deployment failed",
            "2  timed out",
            "3  refused",
            "4  try again later",
        ):
            assert line in shown.stdout


def test_on_a_terminal_the_wait_is_one_live_line(quick_service: LocalRun, workdir: Path) -> None:
    primary, replica = pty.openpty()
    process = subprocess.Popen(  # noqa: S603 - our own module
        cli_command("deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", f"{IMAGE}:1.28.8", "--wait"),
        # A terminal this wide (the live line is cut to the terminal's width; COLUMNS may be set around the run).
        env={**client_environment(connection_env(quick_service)), "COLUMNS": "200"},
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=replica,
        stderr=replica,
    )
    os.close(replica)
    written = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            written += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    assert process.wait(timeout=10) == 0
    text = written.decode()
    assert "\r\x1b[Kwaiting " in text
    # The live line, redrawn in place before the final line (a busy machine may first ask only once the 2 s
    # rollout is over: COMPLETED, 1/1).
    live = re.search(r"\r\x1b\[Kwaiting \d+s: test-cluster/web [A-Z_]+( at [A-Z_]+)?( \([^)]*\))?, [01]/1 tasks", text)
    assert live is not None, text[-600:]
    assert live.start() < text.index("test-cluster/web: COMPLETED after")
    assert "test-cluster/web: COMPLETED after" in text
    assert quick_service.api_key not in text


def test_deploy_wait_waits_through_an_approval_someone_else_gives(quick_service: LocalRun, workdir: Path) -> None:
    import urllib.request

    from conftest import start_cli

    waiting = start_cli(
        "deploy",
        "--cluster",
        CLUSTER,
        "--service",
        quick_service.reviewed_service,
        "--image",
        f"{IMAGE}:1.29.0",
        "--wait",
        "--timeout",
        "2m",
        env=connection_env(quick_service),
        cwd=workdir,
    )
    headers = {"x-api-key": quick_service.api_key, "Content-Type": "application/json", "x-local-principal": "alice"}
    approval = None
    for _ in range(100):  # the client's request makes the approval
        listed = urllib.request.Request(f"{quick_service.api_url}/approvals", headers=headers)  # noqa: S310
        with urllib.request.urlopen(listed, timeout=10) as answer:  # noqa: S310 - loopback
            found = json.loads(answer.read())["approvals"]
        if found:
            approval = found[0]["id"]
            break
        time.sleep(0.1)
    assert approval is not None
    vote = urllib.request.Request(  # noqa: S310 - loopback
        f"{quick_service.api_url}/approvals/{approval}",
        data=json.dumps({"decision": "approve"}).encode(),
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(vote, timeout=30) as answer:  # noqa: S310 - loopback
        assert json.loads(answer.read())["approval"]["status"] == "DEPLOYED"
    stdout, stderr = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, stdout + stderr
    assert f"Waiting for approval {approval} of {CLUSTER}/{quick_service.reviewed_service}" in stdout
    assert "from anyone the service's permissions let approve, not local" in stdout
    assert "COMPLETED" in stdout
    assert quick_service.api_key not in stdout + stderr
