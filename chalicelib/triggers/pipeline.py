"""CodePipeline as a trigger: the `pipeline_deploy` function, used as an "Invoke" action.

`UserParameters` is JSON: `{"cluster", "service"}` or `"services": [...]`,
optional `"container"`, `"wait"` (default true) and `"timeoutMinutes"`. The
input artifact is what pipelines already make: `imagedefinitions.json`
(CodeBuild, for CodePipeline's ECS deploy action) or `imageDetail.json` (the
ECR source action's output, a digest). It is read from the artifact's S3 zip
with the job's own artifact credentials.

The job deploys through the all-or-nothing update path (records with
`action: "pipeline"`, audit tags naming the job), then waits without holding a
Lambda for minutes: while a deployment is in progress it answers
PutJobSuccessResult with a continuation token, and CodePipeline invokes it
again. Every way a job can end is reported to CodePipeline: success with
output variables (`taskDefinitionArn`, `deploymentId`; for several services
`taskDefinitionArns` and `deploymentIds`, comma-separated in the order of
`services`), or failure with a message a person can act on. A job is never
left to time out silently.

A service that requires approval (chalicelib.deploy.gate) makes the job wait
for it the same way: its continuation token names the approval, each
invocation reports the votes so far and who may give them, and once the
approval deploys the job follows that deployment; an approval that ends
otherwise (rejected, expired, superseded, stale) fails the job, and
`timeoutMinutes` counts the wait too.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.access import identity
from chalicelib.access.audit import Provenance
from chalicelib.access.guard import Guard
from chalicelib.access.permissions import UPDATE
from chalicelib.aws import accounts, budget, clients, ecs, parallel
from chalicelib.aws.accounts import Reach
from chalicelib.core.errors import ApprovalPendingError, InvalidRequestError, NotAllowedError, UpdateError
from chalicelib.core.images import InvalidImageError, parse_image
from chalicelib.core.locations import Location
from chalicelib.core.requests import FanOutRequest, ImageChange, Target
from chalicelib.core.results import FanOutResult, iso8601
from chalicelib.core.validation import (
    cluster_identifier,
    image_definitions,
    json_type,
    optional_container,
    refuse_unknown_fields,
    service_identifier,
    service_list,
)
from chalicelib.deploy import approvals as approval_votes
from chalicelib.deploy.update import update_services
from chalicelib.deploy.verify import Verifier
from chalicelib.follow import deployment_status
from chalicelib.state import approvals, freezes
from chalicelib.state.lock import Locks
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import TTL_ATTRIBUTE, from_item, to_item

logger = logging.getLogger(__name__)

PARAMETER_FIELDS = ("cluster", "service", "services", "container", "wait", "timeoutMinutes")
DEFAULT_TIMEOUT_MINUTES = 60
MAX_TIMEOUT_MINUTES = 12 * 60
IMAGE_DEFINITIONS = "imagedefinitions.json"
IMAGE_DETAIL = "imageDetail.json"
# An artifact is a zip of a few small files; refuse to unpack anything bigger.
MAX_ARTIFACT_BYTES = 5 * 1024 * 1024
MAX_FILE_BYTES = 256 * 1024
MAX_MESSAGE = 5000
MAX_SUMMARY = 2048
# What a job did is kept this long, for a run of the same job after CodePipeline could not be told.
JOB_MEMORY_SECONDS = 7 * 24 * 3600
KEY_ID = "codepipeline"
DONE = "COMPLETED"
WAITING = "IN_PROGRESS"


class JobRefused(UpdateError):
    """The job cannot be done as given (its parameters or its artifact): a configuration error."""


@dataclass(frozen=True)
class JobParameters:
    """A job's `UserParameters`, validated."""

    cluster: str
    services: tuple[str, ...]
    container: str | None
    wait: bool
    timeout_minutes: int


@dataclass(frozen=True)
class Job:
    """One CodePipeline job, as the Invoke action hands it to the function."""

    job_id: str
    parameters_text: Any
    artifacts: list[dict[str, Any]]
    credentials: dict[str, str]
    continuation: str | None

    @classmethod
    def of_event(cls, event: Mapping[str, Any]) -> Job:
        """Read the event; ValueError when it is not a CodePipeline job at all (no id to report to)."""
        job = event.get("CodePipeline.job")
        if not isinstance(job, Mapping) or not isinstance(job.get("id"), str) or not job["id"]:
            raise ValueError("the event is not a CodePipeline job (no CodePipeline.job.id)")
        data = job.get("data") if isinstance(job.get("data"), Mapping) else {}
        configuration = (data.get("actionConfiguration") or {}).get("configuration") or {}
        return cls(
            job_id=job["id"],
            parameters_text=configuration.get("UserParameters"),
            artifacts=list(data.get("inputArtifacts") or []),
            credentials=dict(data.get("artifactCredentials") or {}),
            continuation=data.get("continuationToken") or None,
        )


@dataclass(frozen=True)
class Report:
    """What the function tells CodePipeline about a job."""

    succeeded: bool
    message: str
    failure_type: str = "JobFailed"
    continuation: str | None = None
    output_variables: dict[str, str] | None = None
    percent: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the function's log line."""
        return {
            "succeeded": self.succeeded,
            "message": self.message,
            "failureType": None if self.succeeded else self.failure_type,
            "continues": self.continuation is not None,
            "outputVariables": self.output_variables,
        }


@dataclass(frozen=True)
class Services:
    """The AWS clients and settings a job works with."""

    # Where the job's cluster is (its ARN, or a name at home) and how to reach it; refuses what it may not reach.
    reach: Callable[..., Reach]
    codepipeline: Any
    locks: Locks
    guard: Guard  # the allowlists and what the permissions allow CodePipeline (action update)
    verifier: Callable[[Reach], Verifier]  # the checks before a write (VERIFY_IMAGES), with the target's credentials
    artifact_client: Callable[[Mapping[str, str]], Any]
    # The record of a deployment id of a service at home (None) or in another account and region.
    record_of: Callable[[str, Location | None], DeploymentRecord | None]
    now: Callable[[], float] = lambda: time.time()  # looked up on each call, so tests can set the clock


def run_job(event: Mapping[str, Any], services: Services) -> Report | None:
    """Do one invocation of a job and report its outcome to CodePipeline; None when there is no job to report to.

    Nothing is raised for a job's failure (it is reported); only a failure to
    report is raised, so that Lambda invokes the function again.
    """
    try:
        job = Job.of_event(event)
    except ValueError as unreadable:
        logger.error("not a CodePipeline job: %s", unreadable)
        return None
    saved = None if job.continuation else _saved(services, job.job_id)
    if saved is not None and saved.get("report"):
        report = Report(**saved["report"])  # told once already, but the telling failed: tell it again
    else:
        token = job.continuation or (saved or {}).get("token")
        report = _outcome(lambda: _continue(job, token, services) if token else _start(job, services), job)
        if token is None:
            _save(services, job.job_id, report)
    _tell(services.codepipeline, job.job_id, report)
    return report


def _outcome(step: Callable[[], Report], job: Job) -> Report:
    """The report of a step, its failures included."""
    try:
        return step()
    except JobRefused as refused:
        return Report(False, refused.message, "ConfigurationError")
    except NotAllowedError as refused:
        return Report(False, refused.message, "PermissionError")
    except UpdateError as failure:
        return Report(False, failure.message)
    except Exception:
        logger.exception("pipeline job %s failed unexpectedly", job.job_id)
        return Report(False, "the deploy failed with an internal error; it has been logged (search for the job id)")


def _saved(services: Services, job_id: str) -> dict[str, Any] | None:
    """What the first invocation of this job did, when Lambda runs it again (reporting it had failed)."""
    table = services.locks.table
    if table is None:
        return None
    try:
        item = table.call(
            "GetItem",
            TableName=table.name,
            Key=to_item({"pk": f"JOB#{job_id}", "sk": "JOB"}),
            ConsistentRead=True,
        ).get("Item")
    except UpdateError as failure:
        logger.warning("could not read what job %s did before (%s); starting it", job_id, failure.message)
        return None
    return from_item(item) if item else None


def _save(services: Services, job_id: str, report: Report) -> None:
    """Keep what the job did before telling CodePipeline, so a run after a failed telling does not deploy again."""
    table = services.locks.table
    if table is None:
        return
    kept: dict[str, Any] = {"pk": f"JOB#{job_id}", "sk": "JOB", "kind": "job"}
    kept[TTL_ATTRIBUTE] = int(services.now()) + JOB_MEMORY_SECONDS
    if report.continuation:
        kept["token"] = report.continuation
    else:
        kept["report"] = {
            "succeeded": report.succeeded,
            "message": report.message,
            "failure_type": report.failure_type,
            "output_variables": report.output_variables,
            "percent": report.percent,
        }
    try:
        table.call("PutItem", TableName=table.name, Item=to_item(kept))
    except UpdateError as failure:
        logger.warning("could not keep what job %s did (%s)", job_id, failure.message)


def parse_parameters(text: Any) -> JobParameters:
    """UserParameters: a JSON object; JobRefused names what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise JobRefused('UserParameters must be JSON such as {"cluster": "prod", "service": "web"}')
    try:
        body = json.loads(text)
    except ValueError as error:
        raise JobRefused(f"UserParameters is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise JobRefused(f"UserParameters must be a JSON object, not {json_type(body)}")
    try:
        refuse_unknown_fields(body, PARAMETER_FIELDS)
        cluster = cluster_identifier(body, "cluster")
        if "services" in body:
            if "service" in body:
                raise InvalidRequestError("give 'service' (one) or 'services' (several), not both")
            services = tuple(service_list(body["services"], cluster, "services"))
        else:
            services = (service_identifier(body, "service", cluster),)
        container = optional_container(body)
    except InvalidRequestError as error:
        raise JobRefused(f"UserParameters: {error.message}") from error
    wait = body.get("wait", True)
    if not isinstance(wait, bool):
        raise JobRefused(f"UserParameters: 'wait' must be true or false, not {json_type(wait)}")
    timeout = body.get("timeoutMinutes", DEFAULT_TIMEOUT_MINUTES)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_TIMEOUT_MINUTES:
        raise JobRefused(f"UserParameters: 'timeoutMinutes' must be a whole number from 1 to {MAX_TIMEOUT_MINUTES}")
    return JobParameters(cluster, services, container, wait, timeout)


def change_from_artifact(files: Mapping[str, bytes], container: str | None) -> ImageChange:
    """The change an artifact asks for: imagedefinitions.json's containers, or imageDetail.json's image."""
    if IMAGE_DEFINITIONS in files:
        entries = _json_file(files[IMAGE_DEFINITIONS], IMAGE_DEFINITIONS)
        if not isinstance(entries, list):
            raise JobRefused(
                f"{IMAGE_DEFINITIONS} must be a JSON array of {{name, imageUri}}, not {json_type(entries)}"
            )
        try:
            images = image_definitions(entries)
        except InvalidRequestError as error:
            raise JobRefused(error.message) from error
        if container is not None and container not in images:
            raise JobRefused(f"{IMAGE_DEFINITIONS} names no container '{container}' (it names {', '.join(images)})")
        return ImageChange(images={container: images[container]} if container else images)
    if IMAGE_DETAIL in files:
        detail = _json_file(files[IMAGE_DETAIL], IMAGE_DETAIL)
        uri = detail.get("ImageURI") if isinstance(detail, dict) else None
        if not isinstance(uri, str) or not uri:
            raise JobRefused(f"{IMAGE_DETAIL} has no ImageURI")
        try:
            image = parse_image(uri)
        except InvalidImageError as error:
            raise JobRefused(f"{IMAGE_DETAIL}'s ImageURI is not an image reference: {error}") from error
        if not image.is_pinned:
            raise JobRefused(f"{IMAGE_DETAIL}'s ImageURI '{uri}' carries no digest or tag")
        return ImageChange(image=image, container=container)
    names = ", ".join(sorted(files)) or "no files"
    raise JobRefused(f"the input artifact holds neither {IMAGE_DEFINITIONS} nor {IMAGE_DETAIL} (it holds {names})")


def _start(job: Job, services: Services) -> Report:
    parameters = parse_parameters(job.parameters_text)
    files = _artifact_files(job, services)
    change = change_from_artifact(files, parameters.container)
    request = FanOutRequest(parameters.cluster, tuple(Target(service, change) for service in parameters.services))
    target = services.reach(request.cluster, *parameters.services)
    services.guard.check_targets(UPDATE, target.location.cluster_arn(request.cluster), request.targets)
    provenance = Provenance("pipeline", request_id=job.job_id, key_id=KEY_ID, principal=identity.CODEPIPELINE)
    guard = services.guard
    gate = approvals.Gate(bypass=lambda key: guard.bypasses_approval(UPDATE, *freezes.located(key, accounts.home())))
    started = services.now()
    try:
        result = update_services(
            target.client("ecs"), request, services.locks, provenance, verifier=services.verifier(target), gate=gate
        )
    except ApprovalPendingError as asked:
        # Nothing deployed yet: the job waits for the approval (continuation tokens), then follows the deployment.
        approval_id = str(asked.approval["id"])
        token = _token(started, [""] * len(parameters.services), approval_id)
        return Report(True, _waiting_for(asked.approval), continuation=token, percent=5)
    deployments = [(r.deployment or {}).get("id") or "" for r in result.services]
    if not parameters.wait or not any(deployments):
        return _succeeded(parameters, result, deployments, _summary("deployed", result))
    token = _token(started, deployments)
    return Report(True, _summary("deploying", result), continuation=token, percent=10)


def _continue(job: Job, token: str, services: Services) -> Report:
    parameters = parse_parameters(job.parameters_text)
    started, deployments = _read_token(token, len(parameters.services))
    approval_id = _approval_of_token(token)
    if approval_id is not None and not any(deployments):
        waited = _after_approval(services, parameters, started, approval_id)
        if isinstance(waited, Report):
            return waited
        deployments = waited
        if not parameters.wait or not any(deployments):
            described = _described(services, parameters.cluster, parameters.services)
            arns = _task_definitions(parameters, deployments, described)
            return _outputs(parameters, arns, deployments, f"approved ({approval_id}) and deployed")
        token = _token(started, deployments)
    described = _described(services, parameters.cluster, parameters.services)
    judged = _judge(services, parameters, deployments, described)
    for service, verdict in zip(parameters.services, judged, strict=True):
        if verdict is not None and verdict["outcome"] not in (DONE, WAITING):
            name = service.rsplit("/", 1)[-1]
            what = {
                "FAILED": "failed",
                "ROLLED_BACK": "was rolled back",
                "STOPPED": "was stopped",
                "SUPERSEDED": "was replaced by a newer deployment (someone else deployed meanwhile)",
            }.get(verdict["outcome"], verdict["outcome"].lower())
            reason = f": {verdict['reason']}" if verdict.get("reason") else ""
            return Report(False, f"deployment {verdict['id']} of service '{name}' {what}{reason}")
    waiting = [(s, v) for s, v in zip(parameters.services, judged, strict=True) if v and v["outcome"] == WAITING]
    if not waiting:
        arns = _task_definitions(parameters, deployments, described)
        return _outputs(parameters, arns, deployments, "every deployment completed")
    elapsed_minutes = (services.now() - started) / 60
    if elapsed_minutes >= parameters.timeout_minutes:
        names = ", ".join(f"'{s.rsplit('/', 1)[-1]}' ({v['id']})" for s, v in waiting)
        return Report(
            False,
            f"timed out after {parameters.timeout_minutes} minutes waiting for the deployment of {names}, still "
            "in progress; it goes on in ECS: see GET /services/{cluster}/{service}?deployment=<id>",
        )
    done = len(parameters.services) - len(waiting)
    percent = min(95, 10 + int(85 * done / len(parameters.services)))
    names = ", ".join(s.rsplit("/", 1)[-1] for s, _ in waiting)
    return Report(True, f"waiting for {names}", continuation=token, percent=percent)


def _judge(
    services: Services, parameters: JobParameters, deployments: Sequence[str], described: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any] | None]:
    """The verdict on each service's deployment (None for a service that had nothing to deploy)."""
    verdicts: list[dict[str, Any] | None] = []
    for service, deployment in zip(parameters.services, deployments, strict=True):
        if not deployment:
            verdicts.append(None)
            continue
        current = described[service]
        where = accounts.where_of(str(current.get("serviceArn") or parameters.cluster))
        record = services.record_of(deployment, where)
        client = services.reach(parameters.cluster, service).client("ecs")
        tracked = deployment_status.track(client, parameters.cluster, service, deployment, current, record)
        verdicts.append(deployment_status.judge(deployment, current, record, tracked))
    return verdicts


def _described(services: Services, cluster: str, wanted: Sequence[str]) -> dict[str, dict[str, Any]]:
    client = services.reach(cluster, *wanted).client("ecs")
    with budget.within(budget.MAIN_SECONDS):
        batches = parallel.values(lambda b: ecs.describe_services(client, cluster, b), ecs.in_batches(wanted))
    found = ecs.by_identifier(wanted, [service for batch in batches for service in batch])
    for service in wanted:
        if service not in found:
            raise UpdateError(f"service '{service.rsplit('/', 1)[-1]}' is no longer found in cluster '{cluster}'")
    return found


def _task_definitions(
    parameters: JobParameters, deployments: Sequence[str], described: Mapping[str, dict[str, Any]]
) -> list[str]:
    """Each service's revision now: the one its deployment runs."""
    arns = []
    for service, deployment in zip(parameters.services, deployments, strict=True):
        current = described[service]
        listed = next((d for d in current.get("deployments", []) if d.get("id") == deployment), None)
        arns.append(str((listed or {}).get("taskDefinition") or current.get("taskDefinition", "")))
    return arns


def _succeeded(parameters: JobParameters, result: FanOutResult, deployments: Sequence[str], message: str) -> Report:
    arns = [r.task_definition.arn or "" for r in result.services]
    return _outputs(parameters, arns, deployments, message)


def _outputs(parameters: JobParameters, arns: Sequence[str], deployments: Sequence[str], message: str) -> Report:
    if len(parameters.services) == 1:
        variables = {"taskDefinitionArn": arns[0], "deploymentId": deployments[0]}
    else:
        variables = {"taskDefinitionArns": ",".join(arns), "deploymentIds": ",".join(deployments)}
    return Report(True, message, output_variables=variables, percent=100)


def _summary(verb: str, result: FanOutResult) -> str:
    parts = []
    for change in result.services:
        revision = f"{change.task_definition.family}:{change.task_definition.revision}"
        parts.append(f"{change.service} {'on ' if not change.changed else '→ '}{revision}")
    return f"{verb} {', '.join(parts)}"


def _token(started: float, deployments: Sequence[str], approval: str | None = None) -> str:
    fields: dict[str, Any] = {"v": 1, "t0": int(started), "d": list(deployments)}
    if approval is not None:
        fields["a"] = approval  # the approval the job waits for before there is a deployment to follow
    text = json.dumps(fields, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode()


def _approval_of_token(token: str) -> str | None:
    decoded = json.loads(base64.urlsafe_b64decode(token.encode()))  # read already by _read_token
    approval = decoded.get("a")
    if approval is not None and not (isinstance(approval, str) and approval):
        raise JobRefused("the continuation token was not made by this function")
    return approval


def _after_approval(
    services: Services, parameters: JobParameters, started: float, approval_id: str
) -> Report | list[str]:
    """While the approval is pending, a report that the job waits (or timed out); once deployed, each service's
    deployment id (in the order of `services`); a report of failure when it ended otherwise."""
    table = services.locks.table
    if table is None:
        raise JobRefused("this stage keeps no approvals (STATE_TABLE is not set)")
    approval = approval_votes.read(table, approval_id)
    if approval.status == approvals.DEPLOYED:
        by_name = {d.get("service"): d.get("deploymentId") or "" for d in approval.deployments}
        return [by_name.get(s.rsplit("/", 1)[-1], "") for s in parameters.services]
    if approval.status in (approvals.PENDING, approvals.APPROVING):
        if (services.now() - started) / 60 >= parameters.timeout_minutes:
            return Report(
                False,
                f"timed out after {parameters.timeout_minutes} minutes waiting for approval {approval.id} "
                f"({len(approval.approvals)} of {approval.required}); it stays open until {iso8601(approval.deadline)}",
            )
        return Report(
            True,
            _waiting_for(approval.as_dict()),
            continuation=_token(started, [""] * len(parameters.services), approval.id),
            percent=5,
        )
    reason = f": {approval.reason}" if approval.reason else ""
    return Report(False, f"approval {approval.id} ended {approval.status}{reason}; nothing was deployed")


def _waiting_for(approval: Mapping[str, Any]) -> str:
    """What the job says while it waits: the approval, the votes so far, and who may give them."""
    return (
        f"waiting for approval {approval.get('id')}: {approval.get('approvals')} of {approval.get('required')} "
        f"approvals until {approval.get('deadline')} (anyone the permissions give 'approve' on the services, "
        f"but {approval.get('requestedBy')}): POST /approvals/{approval.get('id')}"
    )


def _read_token(token: str, services: int) -> tuple[float, list[str]]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        started, deployments = float(decoded["t0"]), [str(d) for d in decoded["d"]]
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise JobRefused("the continuation token was not made by this function") from error
    if decoded.get("v") != 1 or len(deployments) != services:
        raise JobRefused("the continuation token does not match the job's services (were UserParameters changed?)")
    return started, deployments


def _artifact_files(job: Job, services: Services) -> dict[str, bytes]:
    """The files of the job's input artifact (its S3 zip), read with the job's own credentials."""
    if len(job.artifacts) != 1:
        raise JobRefused(f"the action needs exactly one input artifact, not {len(job.artifacts)}")
    location = (job.artifacts[0].get("location") or {}).get("s3Location") or {}
    bucket, key = location.get("bucketName"), location.get("objectKey")
    if not bucket or not key:
        raise JobRefused("the input artifact has no S3 location")
    client = services.artifact_client(job.credentials)
    with budget.within(budget.MAIN_SECONDS):
        response = clients.call(
            client.get_object,
            "GetObject",
            {
                "NoSuchKey": lambda _: JobRefused(f"the input artifact s3://{bucket}/{key} does not exist"),
                "NoSuchBucket": lambda _: JobRefused(f"the artifact bucket {bucket} does not exist"),
                "AccessDenied": lambda _: JobRefused(f"the job's credentials cannot read s3://{bucket}/{key}"),
            },
            Bucket=bucket,
            Key=key,
        )
        body = response["Body"].read(MAX_ARTIFACT_BYTES + 1)
    if len(body) > MAX_ARTIFACT_BYTES:
        raise JobRefused(f"the input artifact is larger than {MAX_ARTIFACT_BYTES // (1024 * 1024)} MiB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile as error:
        raise JobRefused("the input artifact is not a zip file") from error
    files: dict[str, bytes] = {}
    for info in archive.infolist():
        name = info.filename.rsplit("/", 1)[-1]
        if info.is_dir() or not name:
            continue
        if name in (IMAGE_DEFINITIONS, IMAGE_DETAIL):
            if info.file_size > MAX_FILE_BYTES:
                raise JobRefused(f"{name} in the input artifact is larger than {MAX_FILE_BYTES // 1024} KiB")
            files[name] = archive.read(info)
        else:
            files.setdefault(name, b"")  # named in a refusal, never read
    return files


def _json_file(content: bytes, name: str) -> Any:
    try:
        return json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise JobRefused(f"{name} is not valid JSON: {error}") from error


def _tell(client: Any, job_id: str, report: Report) -> None:
    """Report to CodePipeline; raises UpdateError when it cannot be told (Lambda then invokes again)."""
    with budget.within(budget.ONE_CALL_SECONDS * 2, beyond_cap=True):
        if report.succeeded:
            details: dict[str, Any] = {"summary": report.message[:MAX_SUMMARY]}
            if report.percent is not None:
                details["percentComplete"] = report.percent
            arguments: dict[str, Any] = {"jobId": job_id, "executionDetails": details}
            if report.continuation:
                arguments["continuationToken"] = report.continuation
            if report.output_variables:
                arguments["outputVariables"] = report.output_variables
            clients.call(client.put_job_success_result, "PutJobSuccessResult", {}, **arguments)
        else:
            clients.call(
                client.put_job_failure_result,
                "PutJobFailureResult",
                {},
                jobId=job_id,
                failureDetails={"type": report.failure_type, "message": report.message[:MAX_MESSAGE]},
            )
