"""The event functions, each a few lines of wiring: ECS deployment events, ECR pushes, the push work queue,
the follower index's tag events and hourly reconcile, the approvals' sweep, and CodePipeline jobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalice import Blueprint, Rate
from chalice.app import CloudWatchEvent, SQSEvent

from chalicelib.access import identity
from chalicelib.access.audit import Provenance
from chalicelib.access.permissions import UPDATE
from chalicelib.aws import accounts, budget, clients, queue
from chalicelib.core.config import load_settings
from chalicelib.core.errors import NotAllowedError, UpdateError
from chalicelib.core.push_policy import FOLLOWING_TAGS, Push
from chalicelib.deploy import approvals as approval_votes
from chalicelib.deploy import pauses
from chalicelib.entrypoints import requestlog, wiring
from chalicelib.follow import outcomes
from chalicelib.triggers import followers, pipeline
from chalicelib.triggers import push_work as push_work_module
from chalicelib.triggers.push import Pusher, follow_push, push_id_for

functions = Blueprint(__name__)


class ReceivedEvent(CloudWatchEvent):
    """An EventBridge event as delivered, or any other payload: the handler reads it and ignores what is not one.

    Chalice's own CloudWatchEvent raises on a payload without EventBridge's
    fields, before the handler runs, so a payload sent to the function directly
    would end in a stack trace instead of a logged refusal.
    """

    def _extract_attributes(self, event_dict: Any) -> None:
        fields = event_dict if isinstance(event_dict, Mapping) else {}
        self.version = fields.get("version")
        self.account = fields.get("account")
        self.region = fields.get("region")
        self.detail = fields.get("detail")
        self.detail_type = fields.get("detail-type")
        self.source = fields.get("source")
        self.time = fields.get("time")
        self.event_id = fields.get("id")
        self.resources = fields.get("resources")


# Lambda imports this module itself for these functions (their handler is chalicelib.entrypoints.functions.*),
# not app.py: the log lines must be set up here too.
requestlog.configure()

# What ECS sends to EventBridge about each deployment, and about a deployment waiting at a PAUSE lifecycle hook;
# `chalice deploy` creates the rule.
DEPLOYMENT_EVENTS = {"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change", pauses.HOOK_EVENTS]}
# What ECR sends about each image pushed.
ECR_PUSHES = {
    "source": ["aws.ecr"],
    "detail-type": ["ECR Image Action"],
    "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]},
}
# A service's image-updater tags changed (added, changed, removed): the follower index follows.
TAG_CHANGES = {
    "source": ["aws.tag"],
    "detail-type": ["Tag Change on Resource"],
    "detail": {"service": ["ecs"], "resource-type": ["service"], "changed-tag-keys": list(FOLLOWING_TAGS)},
}
# The queue a push's work goes on (the stage's PUSH_QUEUE names it; the templates create it).
PUSH_QUEUE_NAME = "ecs-image-updater-push-work"
PUSH_WORK_BATCH = 10
# push_work stops starting items this long before its Lambda timeout (an update takes 27 s at most).
PUSH_WORK_MARGIN_SECONDS = 30.0
# pipeline_deploy keeps this long to report to CodePipeline before its Lambda timeout.
PIPELINE_MARGIN_SECONDS = 10.0


def _ecs_of(service_arn: str) -> Any:
    """The ECS client of the account and region a service's ARN names (403 NotAllowedError when not reached)."""
    return wiring.reach(service_arn).client("ecs")


@functions.on_cw_event(DEPLOYMENT_EVENTS, name="deployment_events")
def deployment_events(event: CloudWatchEvent) -> None:
    """Follow a recorded deployment to the outcome ECS reports, and tell the subscribers (SNS); a deployment
    waiting at a PAUSE hook opens an approval (chalicelib.deploy.pauses).

    Events of other accounts and regions arrive forwarded to the home bus (infra/target-account.yaml); the
    service's ARN in the event says where it is."""
    accounts.learn_home(event.context)
    settings = load_settings()
    table = wiring.state_table(settings)
    if table is None:
        requestlog.log_event({"function": "deployment_events", "ignored": "STATE_TABLE is not set"})
        return
    topic = settings.notify_topic_arn
    if event.detail_type == pauses.HOOK_EVENTS:
        _paused(event, table, topic)
        return
    try:
        followed = outcomes.DeploymentEvent.parse(event.to_dict())
    except ValueError as unreadable:
        requestlog.log_event({"function": "deployment_events", "ignored": str(unreadable)})
        return
    try:
        there = wiring.reach(followed.service_arn)  # refused first when it is from a place not reached
        done = outcomes.follow(table, clients.sns_client() if topic else None, topic, followed, there.client("ecs"))
        # A deployment this service did not make (or the circuit breaker's rollback) moves what a follower runs.
        index = None
        if followed.name == outcomes.IN_PROGRESS_EVENT and (done.ignored or followed.is_rollback):
            index = followers.on_deployment(there.client("ecs"), table, followed.service_arn)
        for approval_id, reason in done.pauses_ended:
            ended = pauses.end_waiting(table, approval_id, reason)
            if ended is not None:
                approval_votes.send_owed(table, clients.sns_client() if topic else None, topic, ended)
    except NotAllowedError as refused:
        # Forwarded from an account or a region this service does not reach: nothing of it is kept.
        requestlog.log_event({"function": "deployment_events", "event": followed.event_id, "ignored": refused.message})
        return
    except UpdateError as failure:
        # Failing the invocation makes Lambda deliver the event again; the retry sends only what is owed.
        requestlog.log_event({"function": "deployment_events", "event": followed.event_id, "error": failure.message})
        raise
    requestlog.log_event({"function": "deployment_events", **done.as_dict(), "followerIndex": index})


deployment_events.event_class = ReceivedEvent


def _paused(event: CloudWatchEvent, table: Any, topic: str | None) -> None:
    """An "ECS Hook State Change" event: open the approvals of the PAUSE hooks waiting, and say so at once."""
    try:
        hook = pauses.HookEvent.parse(event.to_dict())
    except ValueError as unreadable:
        requestlog.log_event({"function": "deployment_events", "ignored": str(unreadable)})
        return
    try:
        there = wiring.reach(hook.service_arn)
        done = pauses.open_pauses(table, there.client("ecs"), hook)
        sns = clients.sns_client() if topic else None
        for approval in done.opened:
            approval_votes.send_owed(table, sns, topic, approval)
    except NotAllowedError as refused:
        requestlog.log_event({"function": "deployment_events", "event": hook.event_id, "ignored": refused.message})
        return
    except UpdateError as failure:
        # Failing the invocation makes Lambda deliver the event again; a duplicate opens nothing more.
        requestlog.log_event({"function": "deployment_events", "event": hook.event_id, "error": failure.message})
        raise
    requestlog.log_event({"function": "deployment_events", **done.as_dict()})


@functions.on_cw_event(ECR_PUSHES, name="registry_push")
def registry_push(event: CloudWatchEvent) -> None:
    """An image was pushed to ECR: decide which services follow it and queue their deployments.

    A failure to record or queue fails the invocation, so that Lambda delivers the event again.
    """
    accounts.learn_home(event.context)
    try:
        pushed = Push.of_ecr_event(event.to_dict())
    except ValueError as unreadable:
        requestlog.log_event({"function": "registry_push", "event": event.event_id, "ignored": str(unreadable)})
        return
    push_id = push_id_for(pushed, str(event.event_id))
    provenance = Provenance("push", request_id=push_id, key_id="registry-push", principal=identity.ECR_EVENTS)
    pusher = Pusher(provenance, wiring.guard(identity.Principal.service(identity.ECR_EVENTS)), "ecr")
    try:
        wiring.push_queue_name()
        result = follow_push(wiring.push_table(), wiring.enqueue_push_work, pushed, pusher, push_id)
    except UpdateError as failure:
        requestlog.log_event({"function": "registry_push", "event": event.event_id, "error": failure.message})
        raise
    line = {"function": "registry_push", "event": event.event_id, "principal": identity.ECR_EVENTS}
    requestlog.log_event({**line, **result.as_dict()})


registry_push.event_class = ReceivedEvent


@functions.on_sqs_message(queue=PUSH_QUEUE_NAME, batch_size=PUSH_WORK_BATCH, name="push_work")
def push_work(event: SQSEvent) -> dict[str, Any]:
    """Deploy a push's work items through the update path; the ones that may yet land go back to the queue."""
    accounts.learn_home(event.context)
    records = list(event.to_dict().get("Records") or [])
    if not records:
        requestlog.log_event({"function": "push_work", "items": []})
        return {"batchItemFailures": []}
    settings = load_settings()
    sqs = clients.sqs_client()
    services = push_work_module.WorkServices(
        reach=wiring.reach,
        table=wiring.push_table(),
        locks=wiring.locks(),
        access=wiring.policy(),
        permissions=wiring.permissions,
        verifier=wiring.verifier,
        sqs=sqs,
        queue_url=queue.url_of(sqs, wiring.push_queue_name()),
        sns=clients.sns_client() if settings.notify_topic_arn else None,
        topic_arn=settings.notify_topic_arn,
    )
    left = event.context.get_remaining_time_in_millis() / 1000 if event.context else 120.0
    with budget.capped(max(left - PUSH_WORK_MARGIN_SECONDS, 0.0)):
        done = push_work_module.work(records, services)
    requestlog.log_event({"function": "push_work", "items": [d.as_dict() for d in done]})
    return {"batchItemFailures": [{"itemIdentifier": d.message_id} for d in done if d.back_to_queue]}


@functions.on_cw_event(TAG_CHANGES, name="follower_tags")
def follower_tags(event: CloudWatchEvent) -> None:
    """A service's image-updater tags changed: the follower index reads it again."""
    resources = event.resources if isinstance(event.resources, list) else []
    if not resources or not isinstance(resources[0], str) or ":service/" not in resources[0]:
        requestlog.log_event({"function": "follower_tags", "event": event.event_id, "ignored": "no service named"})
        return
    accounts.learn_home(event.context)
    table = wiring.push_table()
    try:
        done = followers.refresh(_ecs_of(resources[0]), table, resources[0])
    except NotAllowedError as refused:
        requestlog.log_event({"function": "follower_tags", "service": resources[0], "ignored": refused.message})
        return
    except UpdateError as failure:
        requestlog.log_event({"function": "follower_tags", "service": resources[0], "error": failure.message})
        raise
    requestlog.log_event({"function": "follower_tags", "service": resources[0], "followerIndex": done})


follower_tags.event_class = ReceivedEvent


@functions.schedule(Rate(1, unit=Rate.HOURS), name="followers_reconcile")
def followers_reconcile(event: CloudWatchEvent) -> None:
    """Every hour: walk the tagged services of every account and region reached, and correct the follower
    index where it is wrong."""
    accounts.learn_home(event.context)
    report = followers.reconcile_in_time(accounts.everywhere(), wiring.push_table())
    requestlog.log_event({"function": "followers_reconcile", **report.as_dict()})


@functions.schedule(Rate(1, unit=Rate.MINUTES), name="approvals_sweep")
def approvals_sweep(event: CloudWatchEvent) -> None:
    """Every minute: expire the approvals past their deadline, end those whose deployment never reported, reopen
    the pauses whose decision never finished, and send the notifications approvals owe (SNS:
    APPROVAL_REQUESTED, APPROVAL_REJECTED, ...)."""
    accounts.learn_home(event.context)
    settings = load_settings()
    table = wiring.state_table(settings)
    if table is None:
        requestlog.log_event({"function": "approvals_sweep", "ignored": "STATE_TABLE is not set"})
        return
    topic = settings.notify_topic_arn
    try:
        swept = approval_votes.sweep(table, clients.sns_client() if topic else None, topic)
    except UpdateError as failure:
        requestlog.log_event({"function": "approvals_sweep", "error": failure.message})
        raise
    requestlog.log_event({"function": "approvals_sweep", **swept.as_dict()})


@functions.lambda_function(name="pipeline_deploy")
def pipeline_deploy(event: dict[str, Any], context: Any) -> None:
    """A CodePipeline Invoke action: deploy the job's artifact, follow the outcome, report to CodePipeline."""
    accounts.learn_home(context)
    guard = wiring.guard(identity.Principal.service(identity.CODEPIPELINE))
    services = pipeline.Services(
        reach=wiring.reach,
        codepipeline=clients.codepipeline_client(),
        locks=wiring.locks(guard, UPDATE),
        guard=guard,
        verifier=wiring.verifier,
        artifact_client=clients.artifact_client,
        record_of=lambda deployment, where: wiring.record_lookup(wiring.state_table(), where)(deployment),
    )
    left = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    with budget.capped(max(left - PIPELINE_MARGIN_SECONDS, 1.0)):
        report = pipeline.run_job(event, services)
    job = (event.get("CodePipeline.job") or {}).get("id") if isinstance(event, dict) else None
    line = {"function": "pipeline_deploy", "job": job, "principal": identity.CODEPIPELINE}
    requestlog.log_event({**line, **(report.as_dict() if report else {})})
