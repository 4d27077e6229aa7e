"""botocore event hooks: record which AWS operations a client calls, and add a simulated round trip."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call: the service's endpoint prefix (`ecs`, `dynamodb`) and the operation name."""

    service: str
    operation: str


def operations(calls: Sequence[AwsCall], service: str | None = None) -> list[str]:
    """The operation names of `calls`, only those to `service` when one is given."""
    return [call.operation for call in calls if service is None or call.service == service]


class CallLog:
    """The AWS calls made through the clients it watches, one per call (not per retry)."""

    def __init__(self) -> None:
        self.calls: list[AwsCall] = []

    def watch(self, client: Any) -> None:
        """Record every operation this client calls, for any service."""
        client.meta.events.register(
            "before-parameter-build", self._record, unique_id=f"bench-call-log-{id(self)}-{id(client)}"
        )

    def calls_made_by(self, action: Callable[[], object]) -> list[AwsCall]:
        """Run `action` and return the calls it made, in order."""
        start = len(self.calls)
        action()
        return self.calls[start:]

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(AwsCall(model.service_model.endpoint_prefix, model.name))


class SimulatedRoundTrip:
    """Every HTTP attempt of the clients it is attached to takes at least `seconds`, as a network round trip would.

    The attempt's start is noted before moto answers; once the answer is in, the
    attempt waits for whatever is left of the round trip. moto's own work on the
    request thus counts inside the round trip, as the server's does with a real
    AWS, instead of being added to it (in-process, it would also hold Python's
    GIL against every other thread).
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    def attach(self, client: Any) -> None:
        """Make every attempt of this client last the current `seconds` (zero adds nothing)."""
        unique = f"bench-round-trip-{id(self)}-{id(client)}"
        # First, so the start is noted before moto's own `before-send` handler answers the request.
        client.meta.events.register_first("before-send", self._sent, unique_id=f"{unique}-sent")
        client.meta.events.register_first("needs-retry", self._answered, unique_id=f"{unique}-answered")

    def _sent(self, request: Any, **_: Any) -> None:
        request.context[_SENT_AT] = time.perf_counter()

    def _answered(self, request_dict: Any = None, **_: Any) -> None:
        sent_at = (request_dict or {}).get("context", {}).pop(_SENT_AT, None)
        if self.seconds > 0 and sent_at is not None:
            left = self.seconds - (time.perf_counter() - sent_at)
            if left > 0:
                time.sleep(left)


_SENT_AT = "bench-round-trip-sent-at"
