"""Time budgets: every AWS call this service makes ends before its caller must answer.

API Gateway gives up on a request after 29 s, so every AWS call runs inside a
time budget. Each client has short timeouts and a bounded retry count
(botocore's standard mode, chalicelib.aws.clients), and two hooks on every
client keep every wait inside the budget:

- `before-send` refuses to start an attempt that could not end before the
  deadline (the call then fails as a timeout);
- `needs-retry` stops retrying when the back-off sleep plus one more attempt
  could not end before the deadline, by raising the last error (so a call that
  was throttled to the end is reported as throttled).

No sleep and no attempt can therefore cross a deadline:

    one attempt       <= CONNECT_TIMEOUT + READ_TIMEOUT             = 3.5 s
    one state table attempt (DynamoDB answers in milliseconds)      = 2 s
    main phase        <= MAIN (lock wait included)                  = 14 s
    cleanup phase     <= CLEANUP                                    = 6 s
    lock release      <= RELEASE: a failed or timed-out attempt,    = 7 s
                         a second one, then the records on their own
    whole request     <= MAIN + CLEANUP + RELEASE                   = 27 s  (< 29 s)

RegisterTaskDefinition is not idempotent: an attempt that may have reached ECS
(a read timeout, a dropped connection, a 5xx answer) is not retried, since a
retry could register a second revision.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.5
ATTEMPT_SECONDS = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS
# The state table (DynamoDB) answers in milliseconds: shorter attempts, so its calls can be retried in
# the time one ECS attempt takes.
STATE_CONNECT_TIMEOUT_SECONDS = 0.5
STATE_READ_TIMEOUT_SECONDS = 1.5
STATE_ATTEMPT_SECONDS = STATE_CONNECT_TIMEOUT_SECONDS + STATE_READ_TIMEOUT_SECONDS
# Taking the lock, then describe, describe, register, update: the calls of an update.
MAIN_SECONDS = 14.0
# After a failed UpdateService: read the failed services again, put back the moved ones, deregister
# the new revisions (one attempt each when AWS is slow; what does not fit is named in the error).
CLEANUP_SECONDS = 6.0
# Room for exactly one attempt of one call (claiming a push, settling it).
ONE_CALL_SECONDS = ATTEMPT_SECONDS + 0.5
# Letting the locks go and writing the records, a budget of its own (chalicelib.state.lock): the
# transaction survives one failed or timed-out attempt (2 s, a 1 s back-off, a second attempt of
# 2 s), and one state table attempt is kept to write the records on their own if it still cannot run.
RELEASE_SECONDS = 3 * STATE_ATTEMPT_SECONDS + 1.0
API_GATEWAY_TIMEOUT_SECONDS = 29.0
# botocore's standard back-off before retry n is at most min(2 ** (n - 1), 20) s
# (1 s base for throttling, less otherwise), plus up to 5 s when AWS sends
# x-amz-retry-after.
_RETRY_AFTER_EXTRA_SECONDS = 5.0
# A call AWS may have carried out is not sent again: a second revision, or a second answer to a pause hook (which
# ECS would refuse: the first one's outcome is read from ECS's record instead, chalicelib.deploy.pauses).
NOT_RETRIED_WHEN_MAYBE_APPLIED = frozenset({"RegisterTaskDefinition", "ContinueServiceDeployment"})

# Tests replace the clock and the sleep to walk through budgets and waits without waiting.
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], None] = time.sleep

_deadline: ContextVar[float | None] = ContextVar("aws_call_deadline", default=None)
_cap: ContextVar[float | None] = ContextVar("aws_call_cap", default=None)


class TimeBudgetExceeded(Exception):
    """An attempt was not started because it could outlast the request's time budget."""


@contextmanager
def within(seconds: float, *, beyond_cap: bool = False) -> Iterator[None]:
    """Run the enclosed AWS calls with a deadline `seconds` from now.

    Inside `capped`, the deadline is never later than the cap's (unless
    `beyond_cap`: letting a lock go gets its one attempt regardless).
    """
    deadline = clock() + seconds
    cap = _cap.get()
    if not beyond_cap and cap is not None:
        deadline = min(deadline, cap)
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def capped(seconds: float) -> Iterator[None]:
    """A hard deadline `seconds` from now for every budget inside (work that does many updates in one request)."""
    token = _cap.set(clock() + seconds)
    try:
        yield
    finally:
        _cap.reset(token)


def seconds_left() -> float | None:
    """Seconds until the hard deadline of `capped`, or None outside one."""
    cap = _cap.get()
    return None if cap is None else cap - clock()


def time_left() -> float | None:
    """Seconds until the deadline of the innermost `within`, or None outside one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - clock()


def install(client: Any, attempt_seconds: float = ATTEMPT_SECONDS) -> None:
    """Give a client the two hooks that keep its attempts (each up to `attempt_seconds`) inside the budget."""
    event_id = client.meta.service_model.service_id.hyphenize()  # "resource-groups-tagging-api", not the name
    client.meta.events.register_first(
        f"before-send.{event_id}", functools.partial(_refuse_attempt_past_deadline, attempt_seconds)
    )
    client.meta.events.register_first(
        f"needs-retry.{event_id}", functools.partial(_stop_retry_that_cannot_help, attempt_seconds)
    )


def outcome_unknown(response: Any = None, caught_exception: Exception | None = None) -> bool:
    """True when a failed attempt may still have been carried out by AWS."""
    if caught_exception is not None:
        return isinstance(caught_exception, (ReadTimeoutError, ConnectionClosedError))
    return response is not None and response[0].status_code >= 500


def _refuse_attempt_past_deadline(attempt_seconds: float, **_: Any) -> None:
    deadline = _deadline.get()
    if deadline is not None and clock() + attempt_seconds > deadline:
        raise TimeBudgetExceeded(f"not enough of the time budget left for another attempt ({attempt_seconds:g} s)")


def _stop_retry_that_cannot_help(
    attempt_seconds: float,
    attempts: int,
    operation: Any,
    response: Any = None,
    caught_exception: Exception | None = None,
    **_: Any,
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
    if clock() + longest_sleep + attempt_seconds > deadline:
        _raise_last_error(operation, response, caught_exception)


def _raise_last_error(operation: Any, response: Any, caught_exception: Exception | None) -> None:
    """Raise what botocore would raise had it stopped retrying here."""
    if caught_exception is not None:
        raise caught_exception
    raise ClientError(response[1], operation.name)
