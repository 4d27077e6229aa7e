"""Fault injection through botocore event hooks, and a virtual clock for time budgets.

`before-call` hooks fail a whole call once (no retries); `before-send` hooks fail
each attempt, so botocore's retry loop and the time budget run for real. A hook
that raises stops the handlers after it, moto's included, so nothing reaches moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ReadTimeoutError

from chalicelib.aws import budget, clients

ENDPOINT = "https://ecs.eu-west-1.amazonaws.com/"
UNSERVED_URL = "https://fault-injection.invalid/"


def client_error(operation: str, code: str, message: str = "injected", status: int = 400) -> ClientError:
    """The exception botocore raises for an AWS error answer."""
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def fail_call(client: Any, operation: str, error: Callable[[], Exception]) -> None:
    """Make every call of `operation` on `client` raise `error()` before anything is sent."""

    def hook(**_: Any) -> None:
        raise error()

    client.meta.events.register(f"before-call.ecs.{operation}", hook)


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def json_answer(body: Any, status: int = 200) -> AWSResponse:
    """An HTTP answer as ECS sends it: JSON, which botocore parses exactly as it parses ECS's."""
    raw = json.dumps(body).encode()
    return AWSResponse(ENDPOINT, status, {"Content-Type": "application/x-amz-json-1.1"}, _RawBody(raw))


def error_answer(code: str, message: str = "injected", status: int = 400) -> AWSResponse:
    """An HTTP answer as ECS sends it for an error (JSON protocol)."""
    body = json.dumps({"__type": code, "message": message}).encode()
    return AWSResponse(ENDPOINT, status, {"Content-Type": "application/x-amz-json-1.1"}, _RawBody(body))


class VirtualClock:
    """Time that passes only when the code under test waits: sleeps and simulated timeouts."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class AttemptFaults:
    """Fail chosen attempts of chosen operations at the HTTP layer (inside the retry loop)."""

    def __init__(self, client: Any, clock: VirtualClock | None = None, service: str = "ecs") -> None:
        self.attempts: list[str] = []
        self.last_body: bytes | str | None = None
        self._clock = clock
        self._rules: list[tuple[str, Callable[[int], Any]]] = []
        self._attempt_seconds = clients.attempt_seconds(service)
        client.meta.events.register(f"before-send.{service}", self._before_send)

    def on(self, operation: str, outcome: Callable[[int], Any]) -> None:
        """`outcome(attempt_number)` returns an AWSResponse, raises, or returns None to pass."""
        self._rules.append((operation, outcome))

    def time_out(self, operation: str, attempts: set[int] | None = None) -> None:
        """Each chosen attempt of `operation` times out after using a full attempt's time."""

        def outcome(attempt: int) -> None:
            if attempts is None or attempt in attempts:
                if self._clock is not None:
                    self._clock.now += self._attempt_seconds
                raise ReadTimeoutError(endpoint_url=ENDPOINT)

        self.on(operation, outcome)

    def conflict(self, operation: str, attempts: set[int] | None = None) -> None:
        """Each chosen attempt of a DynamoDB write meets another request's transaction on the same item."""

        def outcome(attempt: int) -> AWSResponse | None:
            if attempts is not None and attempt not in attempts:
                return None
            if operation == "TransactWriteItems":
                return error_answer(
                    "TransactionCanceledException",
                    "Transaction cancelled, please refer cancellation reasons for specific reasons "
                    "[TransactionConflict]",
                )
            return error_answer("TransactionConflictException", "Transaction is ongoing for the item")

        self.on(operation, outcome)

    def throttle(self, operation: str, seconds: float = 0.0, attempts: set[int] | None = None) -> None:
        """Each chosen attempt of `operation` is throttled, the answer taking `seconds`."""

        def outcome(attempt: int) -> AWSResponse | None:
            if attempts is not None and attempt not in attempts:
                return None
            if self._clock is not None:
                self._clock.now += seconds
            return error_answer("ThrottlingException", "Rate exceeded")

        self.on(operation, outcome)

    def _before_send(self, request: Any, **_: Any) -> Any:
        operation = getattr(request, "context", {}).get("operation_name") or operation_of(request)
        self.attempts.append(operation)
        self.last_body = request.body
        attempt = self.attempts.count(operation)
        for name, outcome in self._rules:
            if name == operation:
                answer = outcome(attempt)
                if answer is not None:
                    # Every before-send handler runs, moto's too: point the request where
                    # moto serves nothing, so the injected answer is the only one.
                    request.url = UNSERVED_URL
                return answer
        return None


def operation_of(request: Any) -> str:
    """The operation of a JSON-protocol request, from its X-Amz-Target header."""
    target = request.headers.get("X-Amz-Target", b"")
    target = target.decode() if isinstance(target, bytes) else target
    return target.rsplit(".", 1)[-1]


class ServiceFaults:
    """Fail chosen attempts of an operation for chosen services, at the HTTP layer (inside the retry loop).

    Each request is judged by its own body (the service or family it names), so
    calls made at once from several threads are told apart safely.
    """

    def __init__(self, client: Any, clock: VirtualClock | None = None) -> None:
        self.attempts: list[tuple[str, str]] = []
        self._clock = clock
        self._rules: list[tuple[str, str, Callable[[int], Any]]] = []
        client.meta.events.register("before-send.ecs", self._before_send)

    def on(self, operation: str, subject: str, outcome: Callable[[int], Any]) -> None:
        """For `operation` on `subject` (a service name, or a family for RegisterTaskDefinition)."""
        self._rules.append((operation, subject, outcome))

    def fail(self, operation: str, subject: str, code: str, status: int = 400) -> None:
        """Every attempt answers the AWS error `code`."""
        self.on(operation, subject, lambda _attempt: error_answer(code, "injected", status))

    def time_out(self, operation: str, subject: str, then: Callable[[], None] | None = None) -> None:
        """Every attempt times out after a full attempt's time; `then` runs first (the call took effect)."""

        def outcome(_attempt: int) -> None:
            if then is not None:
                then()
            if self._clock is not None:
                self._clock.now += budget.ATTEMPT_SECONDS
            raise ReadTimeoutError(endpoint_url=ENDPOINT)

        self.on(operation, subject, outcome)

    def _before_send(self, request: Any, **_: Any) -> Any:
        operation = operation_of(request)
        body = json.loads(request.body or b"{}")
        subject = str(body.get("service") or body.get("family") or "").rsplit("/", 1)[-1]
        self.attempts.append((operation, subject))
        attempt = self.attempts.count((operation, subject))
        for name, wanted, outcome in self._rules:
            if name == operation and wanted == subject:
                answer = outcome(attempt)
                if answer is not None:
                    request.url = UNSERVED_URL
                return answer
        return None
