"""The event functions: ECS deployment events, ECR pushes and CodePipeline jobs, each a few lines of wiring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalice import Blueprint
from chalice.app import CloudWatchEvent

from chalicelib.access.audit import Provenance
from chalicelib.aws import budget, clients
from chalicelib.core.config import load_settings
from chalicelib.core.errors import UpdateError
from chalicelib.core.push_policy import Push
from chalicelib.entrypoints import requestlog, wiring
from chalicelib.follow import outcomes
from chalicelib.triggers import pipeline
from chalicelib.triggers.push import Pusher, follow_push

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

# What ECS sends to EventBridge about each deployment; `chalice deploy` creates the rule.
DEPLOYMENT_EVENTS = {"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change"]}
# What ECR sends about each image pushed.
ECR_PUSHES = {
    "source": ["aws.ecr"],
    "detail-type": ["ECR Image Action"],
    "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]},
}
# registry_push stops starting updates this long before its Lambda timeout.
PUSH_FUNCTION_MARGIN_SECONDS = 30.0
# pipeline_deploy keeps this long to report to CodePipeline before its Lambda timeout.
PIPELINE_MARGIN_SECONDS = 10.0


@functions.on_cw_event(DEPLOYMENT_EVENTS, name="deployment_events")
def deployment_events(event: CloudWatchEvent) -> None:
    """Follow a recorded deployment to the outcome ECS reports, and tell the subscribers (SNS)."""
    settings = load_settings()
    table = wiring.state_table(settings)
    try:
        followed = outcomes.DeploymentEvent.parse(event.to_dict())
    except ValueError as unreadable:
        requestlog.log_event({"function": "deployment_events", "ignored": str(unreadable)})
        return
    if table is None:
        requestlog.log_event({"function": "deployment_events", "ignored": "STATE_TABLE is not set"})
        return
    topic = settings.notify_topic_arn
    try:
        done = outcomes.follow(table, clients.sns_client() if topic else None, topic, followed)
    except UpdateError as failure:
        # Failing the invocation makes Lambda deliver the event again; the retry sends only what is owed.
        requestlog.log_event({"function": "deployment_events", "event": followed.event_id, "error": failure.message})
        raise
    requestlog.log_event({"function": "deployment_events", **done.as_dict()})


deployment_events.event_class = ReceivedEvent


@functions.on_cw_event(ECR_PUSHES, name="registry_push")
def registry_push(event: CloudWatchEvent) -> None:
    """An image was pushed to ECR: roll every service that follows the repository within its policy."""
    try:
        pushed = Push.of_ecr_event(event.to_dict())
    except ValueError as unreadable:
        requestlog.log_event({"function": "registry_push", "event": event.event_id, "ignored": str(unreadable)})
        return
    provenance = Provenance("push", request_id=str(event.event_id), key_id="registry-push")
    pusher = Pusher(provenance, wiring.policy(), event_id=str(event.event_id))
    left = event.context.get_remaining_time_in_millis() / 1000 if event.context else 300.0
    with budget.capped(max(left - PUSH_FUNCTION_MARGIN_SECONDS, 0.0)):
        result = follow_push(clients.ecs_client(), clients.tagging_client(), wiring.locks(), pushed, pusher)
    requestlog.log_event({"function": "registry_push", "event": event.event_id, **result.as_dict()})


registry_push.event_class = ReceivedEvent


@functions.lambda_function(name="pipeline_deploy")
def pipeline_deploy(event: dict[str, Any], context: Any) -> None:
    """A CodePipeline Invoke action: deploy the job's artifact, follow the outcome, report to CodePipeline."""
    services = pipeline.Services(
        ecs=clients.ecs_client(),
        codepipeline=clients.codepipeline_client(),
        locks=wiring.locks(),
        access=wiring.policy(),
        artifact_client=clients.artifact_client,
        record_of=wiring.record_lookup(wiring.state_table()),
    )
    left = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    with budget.capped(max(left - PIPELINE_MARGIN_SECONDS, 1.0)):
        report = pipeline.run_job(event, services)
    job = (event.get("CodePipeline.job") or {}).get("id") if isinstance(event, dict) else None
    requestlog.log_event({"function": "pipeline_deploy", "job": job, **(report.as_dict() if report else {})})
