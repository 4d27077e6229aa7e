"""Exit codes, and the failures that end a command with one of them."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """What the process's exit status means; documented in --help and cli/README.md."""

    DONE = 0  # completed, or nothing to change
    FAILED = 1  # the deployment failed, was rolled back, stopped or superseded (for stop --wait: not as asked)
    TIMED_OUT = 2  # --wait ran out of time with a deployment still in progress
    REFUSED = 3  # the service refused the request (4xx), or the command line or a description file is invalid
    TRY_AGAIN_LATER = 4  # busy or throttled until --timeout, a 5xx, no answer, or an unreadable one
    UNAVAILABLE = 4  # the same code: the service could not do it now


EXIT_CODES_HELP = """exit codes:
  0  done: completed (or reached the --wait-until stage; for stop, ended as
     asked), or nothing to change
  1  a deployment failed, was rolled back, was stopped, or was superseded by a
     newer one (for stop --wait: it ended otherwise than asked)
  2  timed out waiting (--wait, --wait-until, --timeout) with a deployment still
     in progress (short of the --wait-until stage)
  3  refused: the service refused the request (a 4xx other than busy or throttled;
     its message is printed), or the command line, the configuration or a
     description file is invalid (nothing was sent)
  4  try again later: the service stayed busy (409 with Retry-After) or throttled
     (429) until --timeout ran out, failed (5xx), could not be reached, or
     answered something unreadable"""


class CliError(Exception):
    """A failure that ends the command with `exit_code` after printing `message`."""

    exit_code: ExitCode = ExitCode.UNAVAILABLE

    def __init__(self, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.body = body


class RefusedError(CliError):
    """The service refused the request (a 4xx), or the client refused to send it."""

    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, body: dict[str, Any] | None = None, status: int | None = None) -> None:
        super().__init__(message, body)
        self.status = status


class TryAgainLaterError(CliError):
    """Nothing was done, and the same request may work later: the service is busy or throttling."""

    exit_code = ExitCode.TRY_AGAIN_LATER

    def __init__(
        self, message: str, retry_after: float | None, body: dict[str, Any] | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, body)
        self.retry_after = retry_after
        self.status = status


class RateLimitedError(TryAgainLaterError):
    """A 429: the service (or API Gateway's usage plan) asks to try again later."""

    def __init__(self, message: str, retry_after: float | None, body: dict[str, Any] | None = None) -> None:
        super().__init__(message, retry_after, body, status=429)


class BusyError(TryAgainLaterError):
    """A 409 with Retry-After: another request is changing the service right now."""

    def __init__(self, message: str, retry_after: float | None, body: dict[str, Any] | None = None) -> None:
        super().__init__(message, retry_after, body, status=409)


class UnavailableError(CliError):
    """The service failed (a 5xx), could not be reached, or gave an answer that cannot be read."""

    exit_code = ExitCode.UNAVAILABLE
