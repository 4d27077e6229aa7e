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
    """Sleeps `seconds` before each HTTP attempt of the clients it is attached to, as a network round trip would."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def attach(self, client: Any) -> None:
        """Delay every attempt of this client by the current `seconds` (zero adds nothing)."""
        # First, so it runs before moto's own `before-send` handler answers the request.
        client.meta.events.register_first(
            "before-send", self._wait, unique_id=f"bench-round-trip-{id(self)}-{id(client)}"
        )

    def _wait(self, **_: Any) -> None:
        if self.seconds > 0:
            time.sleep(self.seconds)
