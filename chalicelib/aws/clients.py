"""AWS clients: made lazily, reused by the warm Lambda, and bounded in time.

API Gateway gives up on a request after 29 s, so every AWS call this service
makes runs inside a time budget. Each client has short timeouts and a bounded
retry count (botocore's standard mode), and two hooks keep every wait inside
the budget:

- `before-send` refuses to start an attempt that could not end before the
  deadline (the call then fails as a timeout);
- `needs-retry` stops retrying when the back-off sleep plus one more attempt
  could not end before the deadline, by raising the last error (so a call that
  was throttled to the end is reported as throttled).

No sleep and no attempt can therefore cross a deadline:

    one attempt       <= CONNECT_TIMEOUT + READ_TIMEOUT             = 3.5 s
    main phase        <= MAIN_BUDGET (lock wait included)           = 14 s
    cleanup phase     <= CLEANUP_BUDGET                             = 7 s
    lock release      <= RELEASE_BUDGET (one attempt)               = 4 s
    whole request     <= MAIN + CLEANUP + RELEASE                   = 25 s  (< 29 s)

RegisterTaskDefinition is not idempotent: an attempt that may have reached ECS
(a read timeout, a dropped connection, a 5xx answer) is not retried, since a
retry could register a second revision.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ParamValidationError,
    ReadTimeoutError,
)

from chalicelib.aws import fidelity
from chalicelib.core.errors import AwsCallError, AwsThrottledError, AwsTimeoutError, UpdateError

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.5
# botocore's `total_max_attempts` counts the first try too (`max_attempts` counts only retries).
TOTAL_MAX_ATTEMPTS = 3
ATTEMPT_SECONDS = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS
# Taking the lock, then describe, describe, register, update: the calls of an update.
MAIN_BUDGET_SECONDS = 14.0
# After a failed UpdateService: read the failed services again, put back the moved ones, deregister
# the new revisions (one attempt each when AWS is slow; what does not fit is named in the error).
CLEANUP_BUDGET_SECONDS = 7.0
# Releasing the service lock: room for exactly one attempt.
RELEASE_BUDGET_SECONDS = ATTEMPT_SECONDS + 0.5
API_GATEWAY_TIMEOUT_SECONDS = 29.0
# botocore's standard back-off before retry n is at most min(2 ** (n - 1), 20) s
# (1 s base for throttling, less otherwise), plus up to 5 s when AWS sends
# x-amz-retry-after.
_RETRY_AFTER_EXTRA_SECONDS = 5.0
NOT_RETRIED_WHEN_MAYBE_APPLIED = frozenset({"RegisterTaskDefinition"})

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
    }
)

# Tests replace the clock and the sleep to walk through budgets and waits without waiting.
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], None] = time.sleep

_deadline: ContextVar[float | None] = ContextVar("aws_call_deadline", default=None)
_cap: ContextVar[float | None] = ContextVar("aws_call_cap", default=None)
_session: boto3.session.Session | None = None
_clients: dict[str, Any] = {}
# Sessions are not thread-safe: clients are made one at a time, then shared.
_clients_lock = threading.RLock()
_session_lock = threading.Lock()

ErrorFactory = Callable[[str], UpdateError]


class TimeBudgetExceeded(Exception):
    """An attempt was not started because it could outlast the request's time budget."""


def client_config() -> Config:
    """Timeouts and retries shared by every client of this service."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
    )


def session() -> boto3.session.Session:
    """The process-wide boto3 session; it keeps parsed service models, so clients are cheap."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session


def new_client(service: str) -> Any:
    """A new client with this service's timeouts, retries and time budget."""
    with _clients_lock:
        client = session().client(service, config=client_config())
    event_id = client.meta.service_model.service_id.hyphenize()  # "resource-groups-tagging-api", not the name
    client.meta.events.register_first(f"before-send.{event_id}", _refuse_attempt_past_deadline)
    client.meta.events.register_first(f"needs-retry.{event_id}", _stop_retry_that_cannot_help)
    if service == "ecs":
        fidelity.install(client)  # task definitions are copied from ECS's own JSON, every field kept
    return client


def ecs_client() -> Any:
    """The process-wide ECS client, created on first use (never at import time)."""
    return cached_client("ecs")


def dynamodb_client() -> Any:
    """The process-wide DynamoDB client (the state table), created on first use."""
    return cached_client("dynamodb")


def sns_client() -> Any:
    """The process-wide SNS client (notifications), created on first use."""
    return cached_client("sns")


def codepipeline_client() -> Any:
    """The process-wide CodePipeline client (job results of the pipeline action)."""
    return cached_client("codepipeline")


def artifact_client(credentials: Mapping[str, str]) -> Any:
    """An S3 client with a CodePipeline job's own artifact credentials (made per job: they are the job's)."""
    with _clients_lock:
        client = session().client(
            "s3",
            aws_access_key_id=credentials.get("accessKeyId"),
            aws_secret_access_key=credentials.get("secretAccessKey"),
            aws_session_token=credentials.get("sessionToken"),
            config=client_config(),
        )
    client.meta.events.register_first("before-send.s3", _refuse_attempt_past_deadline)
    client.meta.events.register_first("needs-retry.s3", _stop_retry_that_cannot_help)
    return client


def tagging_client() -> Any:
    """The process-wide Resource Groups Tagging API client (services that opted in to pushes)."""
    return cached_client("resourcegroupstaggingapi")


def cached_client(service: str) -> Any:
    """The process-wide client of `service`, created on first use (clients are thread-safe)."""
    with _clients_lock:
        if service not in _clients:
            _clients[service] = new_client(service)
        return _clients[service]


def reset_clients() -> None:
    """Forget the cached clients (tests start each AWS world with fresh ones)."""
    with _clients_lock:
        _clients.clear()


@contextmanager
def time_budget(seconds: float, *, within_cap: bool = True) -> Iterator[None]:
    """Run the enclosed AWS calls with a deadline `seconds` from now.

    Inside `time_cap`, the deadline is never later than the cap's (unless
    `within_cap` is False: letting a lock go gets its one attempt regardless).
    """
    deadline = clock() + seconds
    cap = _cap.get()
    if within_cap and cap is not None:
        deadline = min(deadline, cap)
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def time_cap(seconds: float) -> Iterator[None]:
    """A hard deadline `seconds` from now for every budget inside (work that does many updates in one request)."""
    token = _cap.set(clock() + seconds)
    try:
        yield
    finally:
        _cap.reset(token)


def seconds_left() -> float | None:
    """Seconds until the hard deadline of `time_cap`, or None outside one."""
    cap = _cap.get()
    return None if cap is None else cap - clock()


def call(
    method: Callable[..., dict[str, Any]], step: str, known: Mapping[str, ErrorFactory], **kwargs: Any
) -> dict[str, Any]:
    """Make one AWS call and translate its failure into an UpdateError naming `step`.

    `known` maps AWS error codes to the domain error to raise instead.
    """
    try:
        return method(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in known:
            raise known[code](message) from error
        if code in THROTTLING_CODES:
            raise AwsThrottledError(
                step, f"{step} was throttled by AWS ({code}) until its retries ran out; try again in a few seconds"
            ) from error
        raise AwsCallError(
            step, f"{step} failed: {code}: {message}".rstrip(": "), outcome_unknown=status >= 500
        ) from error
    except TimeBudgetExceeded as error:
        raise AwsTimeoutError(step, f"{step} did not answer in time: {error}") from error
    except (ReadTimeoutError, ConnectTimeoutError) as error:
        raise AwsTimeoutError(
            step, f"{step} did not answer in time: {error}", outcome_unknown=outcome_unknown(None, error)
        ) from error
    except ParamValidationError as error:
        raise AwsCallError(step, f"{step} was not sent: the AWS SDK refused its parameters: {error}") from error
    except BotoCoreError as error:
        raise AwsCallError(step, f"{step} failed: {error}", outcome_unknown=outcome_unknown(None, error)) from error


def outcome_unknown(response: Any = None, caught_exception: Exception | None = None) -> bool:
    """True when a failed attempt may still have been carried out by AWS."""
    if caught_exception is not None:
        return isinstance(caught_exception, (ReadTimeoutError, ConnectionClosedError))
    return response is not None and response[0].status_code >= 500


def _refuse_attempt_past_deadline(**_: Any) -> None:
    deadline = _deadline.get()
    if deadline is not None and clock() + ATTEMPT_SECONDS > deadline:
        raise TimeBudgetExceeded(f"not enough of the time budget left for another attempt ({ATTEMPT_SECONDS:g} s)")


def _stop_retry_that_cannot_help(
    attempts: int, operation: Any, response: Any = None, caught_exception: Exception | None = None, **_: Any
) -> None:
    """Stop the retries when a retry would be unsafe or outlast the budget, by raising the last error.

    Raising, rather than answering False, means the same in every botocore: older
    releases (like the one in the Lambda runtime) read a False answer as "retry
    without waiting". Returning None leaves the decision to botocore's own handler.
    """
    if caught_exception is None and (response is None or response[0].status_code < 300):
        return  # success: nothing to retry
    if operation.name in NOT_RETRIED_WHEN_MAYBE_APPLIED and outcome_unknown(response, caught_exception):
        _raise_last_error(operation, response, caught_exception)
    deadline = _deadline.get()
    if deadline is None:
        return
    longest_sleep = min(2.0 ** min(attempts - 1, 10), 20.0)
    if response is not None and "x-amz-retry-after" in response[0].headers:
        longest_sleep += _RETRY_AFTER_EXTRA_SECONDS
    if clock() + longest_sleep + ATTEMPT_SECONDS > deadline:
        _raise_last_error(operation, response, caught_exception)


def _raise_last_error(operation: Any, response: Any, caught_exception: Exception | None) -> None:
    """Raise what botocore would raise had it stopped retrying here."""
    if caught_exception is not None:
        raise caught_exception
    raise ClientError(response[1], operation.name)
