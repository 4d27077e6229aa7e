"""AWS clients: made lazily, reused by the warm Lambda, and bounded in time.

API Gateway gives up on a request after 29 s, so every AWS call this service
makes runs inside a time budget. Each client has short timeouts and a bounded
retry count (botocore's standard mode), and two hooks keep every wait inside
the budget:

- `before-send` refuses to start an attempt that could not end before the
  deadline (the call then fails as a timeout);
- `needs-retry` stops retrying when the back-off sleep plus one more attempt
  could not end before the deadline (the last error then stands, so a call that
  was throttled to the end is reported as throttled).

No sleep and no attempt can therefore cross a deadline:

    one attempt       <= CONNECT_TIMEOUT + READ_TIMEOUT       = 4 s
    main phase        <= MAIN_BUDGET                          = 17 s
    cleanup phase     <= CLEANUP_BUDGET                       = 8 s
    whole request     <= MAIN_BUDGET + CLEANUP_BUDGET         = 25 s  (< 29 s)

RegisterTaskDefinition is not idempotent: an attempt that may have reached ECS
(a read timeout, a dropped connection, a 5xx answer) is not retried, since a
retry could register a second revision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 3.0
# botocore's `total_max_attempts` counts the first try too (`max_attempts` counts only retries).
TOTAL_MAX_ATTEMPTS = 3
ATTEMPT_SECONDS = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS
# Describe, describe, register, update: the calls of an update.
MAIN_BUDGET_SECONDS = 17.0
# After a failed UpdateService: check the service, deregister the new revision.
CLEANUP_BUDGET_SECONDS = 8.0
API_GATEWAY_TIMEOUT_SECONDS = 29.0
# botocore's standard back-off before retry n is at most min(2 ** (n - 1), 20) s
# (1 s base for throttling, less otherwise), plus up to 5 s when AWS sends
# x-amz-retry-after.
_RETRY_AFTER_EXTRA_SECONDS = 5.0
NOT_RETRIED_WHEN_MAYBE_APPLIED = frozenset({"RegisterTaskDefinition"})

# Tests replace the clock to walk through the budget without waiting.
clock: Callable[[], float] = time.monotonic

_deadline: ContextVar[float | None] = ContextVar("aws_call_deadline", default=None)
_session: boto3.session.Session | None = None
_ecs_client: Any = None


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
    if _session is None:
        _session = boto3.session.Session()
    return _session


def new_ecs_client() -> Any:
    """A new ECS client with this service's timeouts, retries and time budget."""
    client = session().client("ecs", config=client_config())
    client.meta.events.register_first("before-send.ecs", _refuse_attempt_past_deadline)
    client.meta.events.register_first("needs-retry.ecs", _stop_retry_that_cannot_help)
    return client


def ecs_client() -> Any:
    """The process-wide ECS client, created on first use (never at import time)."""
    global _ecs_client
    if _ecs_client is None:
        _ecs_client = new_ecs_client()
    return _ecs_client


def reset_clients() -> None:
    """Forget the cached clients (tests start each AWS world with fresh ones)."""
    global _ecs_client
    _ecs_client = None


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Run the enclosed AWS calls with a deadline `seconds` from now."""
    token = _deadline.set(clock() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


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
) -> bool | None:
    """Return False (no retry) when a retry would be unsafe or outlast the budget; None defers to botocore."""
    if caught_exception is None and (response is None or response[0].status_code < 300):
        return None  # success: nothing to retry
    if operation.name in NOT_RETRIED_WHEN_MAYBE_APPLIED and outcome_unknown(response, caught_exception):
        return False
    deadline = _deadline.get()
    if deadline is None:
        return None
    longest_sleep = min(2.0 ** (attempts - 1), 20.0)
    if response is not None and "x-amz-retry-after" in response[0].headers:
        longest_sleep += _RETRY_AFTER_EXTRA_SECONDS
    if clock() + longest_sleep + ATTEMPT_SECONDS > deadline:
        return False
    return None
