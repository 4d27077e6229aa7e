"""The values one benchmark run produces, and the promise this project's update makes about them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.fidelity import FidelityReport
from bench.hooks import AwsCall, operations
from bench.latency import LatencySummary

OURS_CHANGE_CALLS = ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
OURS_NO_OP_CALLS = ["DescribeServices", "DescribeTaskDefinition"]


@dataclass(frozen=True)
class BenchSettings:
    """How much to measure."""

    iterations: int = 200
    network_iterations: int = 200
    round_trip_ms: float = 30.0
    cold_start_runs: int = 9
    package: bool = True
    # Rollouts of ten services per contender and fleet shape (0 skips that part).
    fan_out_rounds: int = 15

    @property
    def network_phase(self) -> str:
        """The label of the phase with the simulated round trip."""
        return f"{self.round_trip_ms:g} ms round trip"


QUICK = BenchSettings(iterations=5, network_iterations=3, cold_start_runs=2, fan_out_rounds=2)
NO_NETWORK = "no network"


@dataclass(frozen=True)
class ContenderFindings:
    """The AWS calls of one changed and one no-op update, and the fidelity of the change."""

    label: str
    ours: bool
    change_calls: list[AwsCall]
    no_op_calls: list[AwsCall]
    fidelity: FidelityReport

    @property
    def other_than_ecs(self) -> list[AwsCall]:
        """Calls to services other than ECS (the app's lock, for one), changed and no-op update together."""
        return [call for call in [*self.change_calls, *self.no_op_calls] if call.service != "ecs"]


@dataclass(frozen=True)
class BenchResults:
    """Everything one run measured: latency is phase -> kind (changed, no-op) -> contender key -> summary."""

    settings: BenchSettings
    findings: dict[str, ContenderFindings]
    latency: dict[str, dict[str, dict[str, LatencySummary]]]
    import_ms: dict[str, float]
    zip_bytes: int | None
    seconds: float
    fan_out: list[Any] = field(default_factory=list)  # bench.fanout.FanOutFindings, one per fleet shape


def broken_promises(findings: Mapping[str, ContenderFindings], theirs: str, domain: str) -> list[str]:
    """Where this project breaks its promise: 4 ECS calls per change and 2 per no-op, no more than theirs, no loss.

    The domain call `domain` must make those ECS calls and nothing else; the app may add calls to other
    services (its lock), which are reported, not counted against it here.
    """
    problems: list[str] = []
    reference = findings[theirs]
    for key, found in findings.items():
        if not found.ours:
            continue
        change, no_op = operations(found.change_calls, "ecs"), operations(found.no_op_calls, "ecs")
        if change != OURS_CHANGE_CALLS:
            problems.append(f"{key}: a change made the ECS calls {change}, not {OURS_CHANGE_CALLS}")
        if no_op != OURS_NO_OP_CALLS:
            problems.append(f"{key}: a no-op made the ECS calls {no_op}, not {OURS_NO_OP_CALLS}")
        if len(change) > len(reference.change_calls) or len(no_op) > len(reference.no_op_calls):
            problems.append(f"{key}: more ECS calls than {theirs}")
        if key == domain and found.other_than_ecs:
            problems.append(f"{key}: calls other than ECS: {found.other_than_ecs}")
        if not found.fidelity.faithful or not found.fidelity.image_changes:
            problems.append(f"{key}: the new revision is not a faithful copy: {found.fidelity}")
    return problems
