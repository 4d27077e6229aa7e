"""One exception class per failure a caller can act on.

They are raised where the fact is known and carry a message a person can act
on; `app.py` maps each class to an HTTP status in one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.core.windows import InForce


def echo_input(text: str, limit: int = 80) -> str:
    """Caller input made safe to quote in a message: control characters escaped, long input cut."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


class UpdateError(Exception):
    """Base class: every failure the service reports to its caller.

    `retryable` says whether the same request may succeed later unchanged (busy,
    throttled, timed out, AWS failing) or not (a refusal): each entry point acts
    on it in one place (a queue consumer tries again; a refusal is final).
    """

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, Any]:
        """More of the answer's JSON beside `Code` and `Message` (a 423 names its freezes there)."""
        return {}


class InvalidRequestError(UpdateError):
    """The request body breaks a rule; the message names the field."""


class NotAllowedError(UpdateError):
    """The request is outside the operator's allowlists or digest rule; the message names the rule."""


class NotPermittedError(NotAllowedError):
    """No rule of the permissions file allows the principal the action on the target; the message names all three."""


class UnauthorizedError(UpdateError):
    """A webhook's signature is missing or wrong (nothing else about the request was looked at)."""


class WebhookNotConfiguredError(UpdateError):
    """The stage names no secret for this webhook, so it takes none."""


class PermissionsFileError(UpdateError):
    """The stage's permissions file cannot be read or breaks a rule; nothing is allowed until it is fixed.

    Retryable: a corrected file may be on its way (a deployment), and a queued push should then still land.
    """

    retryable = True


class DeploymentWouldFailError(UpdateError):
    """A check before any write found that the deployment cannot work: an image or a platform that is not there,
    a secret that does not exist. The message names every failed check."""


class RegistryUnavailableError(UpdateError):
    """A registry (or the secret store) could not confirm an image: unreachable, 5xx, refused. Maybe later."""

    retryable = True


class ServiceBusyError(UpdateError):
    """Another request holds the service's lock."""

    retryable = True


class FrozenError(UpdateError):
    """A freeze (a one-off freeze or a window of the permissions file) stops writes to the service now; the
    message and `details` name each freeze, its reason and its end. Not retryable as it is: a queued push waits
    for the end (or is dropped when a freeze says so), a caller may ask again after it."""

    def __init__(self, message: str, stops: Sequence[InForce]) -> None:
        super().__init__(message)
        self.stops = tuple(stops)

    @property
    def until(self) -> datetime:
        """When the last freeze that stops the write ends."""
        return max(stop.until for stop in self.stops)

    @property
    def drops_pushes(self) -> bool:
        """True when a freeze that stops the write says a push arriving during it is dropped, not kept waiting."""
        return any(stop.pushes == "drop" for stop in self.stops)

    def details(self) -> dict[str, Any]:
        """The freezes, each with its id or name, its reason and its end."""
        return {"freezes": [stop.as_dict() for stop in self.stops]}


class FreezeNotFoundError(UpdateError):
    """No freeze with that id (or it expired long ago)."""


class ApprovalPendingError(UpdateError):
    """The change waits for approval (chalicelib.state.approvals): nothing was written to ECS; `details` holds the
    approval. Answered 202 Accepted; a queued push and a pipeline job wait for it instead of failing."""

    def __init__(self, message: str, approval: dict[str, Any]) -> None:
        super().__init__(message)
        self.approval = approval

    def details(self) -> dict[str, Any]:
        """The approval, as GET /approvals/{id} shows it."""
        return {"approval": self.approval}


class ApprovalNotFoundError(UpdateError):
    """No approval with that id (or it ended long ago)."""


class ApprovalClosedError(UpdateError):
    """The approval takes no more votes (it ended, or the principal voted already); the message says which."""


class ApprovalTagError(UpdateError):
    """A service's approval tags say something that cannot be obeyed; the message names the tag."""


class ClusterNotFoundError(UpdateError):
    """The cluster does not exist (in this account and region)."""


class ServiceNotFoundError(UpdateError):
    """The service does not exist in the cluster."""


class TaskDefinitionNotFoundError(UpdateError):
    """ECS cannot describe the named task definition revision."""


class NothingToRollBackToError(UpdateError):
    """The running revision names no earlier revision to go back to."""


class RevisionNotActiveError(UpdateError):
    """The revision to go back to is INACTIVE (or being deleted)."""


class ContainerNotFoundError(UpdateError):
    """The named container is not in the service's task definition."""


class AmbiguousContainerError(UpdateError):
    """No container could be chosen without the request naming one."""


class ServiceNotUpdatableError(UpdateError):
    """The service exists but cannot take a new task definition now (state or controller)."""


class UncopyableTaskDefinitionError(UpdateError):
    """The running task definition has a field this service's AWS SDK cannot send back."""


class ServiceChangedError(UpdateError):
    """The service no longer runs what a decision was made on (another change came first)."""


class HookNotWaitingError(ServiceChangedError):
    """ECS no longer waits at the pause hook a decision was for (it continued, rolled back or timed out)."""


class StateTableMissingError(UpdateError):
    """The stage names a state table that does not exist."""

    retryable = True  # a deployment of the stack may be on its way


class NoHistoryError(UpdateError):
    """The stage keeps no history (no STATE_TABLE)."""


class NoPushQueueError(UpdateError):
    """The stage takes no pushes: it names no push queue (PUSH_QUEUE)."""


class PushNotFoundError(UpdateError):
    """No push with that id was recorded (or it expired)."""


class DeploymentNotFoundError(UpdateError):
    """Neither ECS nor the records know the deployment asked about."""


class DeploymentNotStoppableError(UpdateError):
    """ECS will not stop the deployment (it has finished, or is already stopping or rolling back)."""


class UnexpectedError(UpdateError):
    """A bug met while working on a request; the trace is in the log. Tried again: it may not come back."""

    retryable = True


class AwsCallError(UpdateError):
    """An AWS call failed; `step` names the API operation that failed.

    `outcome_unknown` is True when AWS may have carried the call out anyway
    (no answer in time, a dropped connection, a 5xx answer). AWS failing may
    recover (a permission granted, a quota raised, an outage over): retryable.
    """

    retryable = True

    def __init__(self, step: str, message: str, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.step = step
        self.outcome_unknown = outcome_unknown


class AwsThrottledError(AwsCallError):
    """AWS kept throttling the call after every retry."""


class AwsTimeoutError(AwsCallError):
    """AWS did not answer in time (per attempt, or the request's time budget ran out)."""


# The one map from failures to HTTP: (status, Chalice-style error code). The
# routes answer with it and the deployment records keep the status answered.
HTTP_STATUS: dict[type[UpdateError], tuple[int, str]] = {
    InvalidRequestError: (400, "BadRequestError"),
    AmbiguousContainerError: (400, "BadRequestError"),
    ClusterNotFoundError: (404, "NotFoundError"),
    ServiceNotFoundError: (404, "NotFoundError"),
    ContainerNotFoundError: (404, "NotFoundError"),
    TaskDefinitionNotFoundError: (404, "NotFoundError"),
    DeploymentNotFoundError: (404, "NotFoundError"),
    PushNotFoundError: (404, "NotFoundError"),
    FreezeNotFoundError: (404, "NotFoundError"),
    ApprovalNotFoundError: (404, "NotFoundError"),
    ApprovalPendingError: (202, "ApprovalRequired"),
    ApprovalClosedError: (409, "ConflictError"),
    ApprovalTagError: (409, "ConflictError"),
    FrozenError: (423, "LockedError"),
    NotAllowedError: (403, "ForbiddenError"),
    DeploymentWouldFailError: (422, "UnprocessableEntityError"),
    RegistryUnavailableError: (502, "BadGatewayError"),
    UnauthorizedError: (401, "UnauthorizedError"),
    WebhookNotConfiguredError: (404, "NotFoundError"),
    ServiceNotUpdatableError: (409, "ConflictError"),
    ServiceBusyError: (409, "ConflictError"),
    ServiceChangedError: (409, "ConflictError"),
    RevisionNotActiveError: (409, "ConflictError"),
    NothingToRollBackToError: (409, "ConflictError"),
    NoHistoryError: (409, "ConflictError"),
    NoPushQueueError: (409, "ConflictError"),
    DeploymentNotStoppableError: (409, "ConflictError"),
    AwsThrottledError: (429, "TooManyRequestsError"),
    AwsTimeoutError: (504, "GatewayTimeoutError"),
    AwsCallError: (502, "BadGatewayError"),
    UncopyableTaskDefinitionError: (502, "BadGatewayError"),
    StateTableMissingError: (502, "BadGatewayError"),
    UnexpectedError: (500, "InternalServerError"),
    PermissionsFileError: (500, "ConfigurationError"),
}
INTERNAL_ERROR = (500, "InternalServerError")
INTERNAL_ERROR_MESSAGE = "an internal error occurred; it has been logged"


def http_status(failure: BaseException) -> tuple[int, str]:
    """The HTTP status and error code a failure is answered with (500 for a bug)."""
    if not isinstance(failure, UpdateError):
        return INTERNAL_ERROR
    for cls in type(failure).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 502, "BadGatewayError"
