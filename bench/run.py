"""Run the benchmark of this service's update against ecs-deploy, print one table, write bench/results.md.

.venv/bin/python bench/run.py            # the full run: 200 updates per contender and phase
.venv/bin/python bench/run.py --quick    # a few iterations; prints only, bench/results.md is left alone
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: the project root must be importable before bench, chalicelib and tests are.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.coldstart import deployment_zip_bytes, import_medians_ms
from bench.contenders import CONTENDER_KEYS, ECS_DEPLOY_API, OURS_DIRECT, OURS_HTTP, Contender, contenders, service_of
from bench.fanout import SHAPES, measure_fan_out, render_fan_out
from bench.fidelity import compare_revisions
from bench.hooks import CallLog, SimulatedRoundTrip
from bench.latency import interleaved_latencies
from bench.measurements import (
    NO_NETWORK,
    QUICK,
    BenchResults,
    BenchSettings,
    ContenderFindings,
    broken_promises,
)
from bench.report import render_results_file, render_table
from bench.world import CHANGED_CONTAINER, World, bench_world

RESULTS_FILE = Path(__file__).resolve().parent / "results.md"
TIMED_KEYS = (OURS_DIRECT, OURS_HTTP, ECS_DEPLOY_API)
THEIRS = ECS_DEPLOY_API
FIRST_CHANGE_TAG = "2.0"


def calls_and_fidelity(
    world: World, contenders_by_key: Mapping[str, Contender], call_log: CallLog
) -> dict[str, ContenderFindings]:
    """Per contender: the calls of a changed update, of a no-op update, and what the change did to the revision."""
    findings: dict[str, ContenderFindings] = {}
    for key, contender in contenders_by_key.items():
        before = world.revision_with_tags(world.running_arn(contender.service))
        change_calls = call_log.calls_made_by(lambda contender=contender: contender.roll_to(FIRST_CHANGE_TAG))
        after = world.revision_with_tags(world.running_arn(contender.service))
        no_op_calls = call_log.calls_made_by(lambda contender=contender: contender.roll_to(FIRST_CHANGE_TAG))
        fidelity = compare_revisions(before, after, CHANGED_CONTAINER)
        findings[key] = ContenderFindings(contender.label, contender.ours, change_calls, no_op_calls, fidelity)
    return findings


def check_calls_and_fidelity() -> dict[str, ContenderFindings]:
    """Only the call counts and the fidelity, in a moto world of their own."""
    with bench_world([service_of(key) for key in CONTENDER_KEYS]) as world, contenders() as contenders_by_key:
        call_log = CallLog()
        for client in _distinct_clients(contenders_by_key.values()):
            call_log.watch(client)
        return calls_and_fidelity(world, contenders_by_key, call_log)


def run_benchmark(settings: BenchSettings) -> BenchResults:
    """Measure calls, fidelity and latency in one moto world, then the cold start outside it."""
    started = time.perf_counter()
    call_log, round_trip = CallLog(), SimulatedRoundTrip()
    with bench_world([service_of(key) for key in CONTENDER_KEYS]) as world, contenders() as contenders_by_key:
        for client in _distinct_clients(contenders_by_key.values()):
            call_log.watch(client)
            round_trip.attach(client)
        findings = calls_and_fidelity(world, contenders_by_key, call_log)
        timed = [contenders_by_key[key] for key in TIMED_KEYS]
        latency = {NO_NETWORK: interleaved_latencies(timed, settings.iterations, "3", world.forget_records)}
        round_trip.seconds = settings.round_trip_ms / 1000
        latency[settings.network_phase] = interleaved_latencies(
            timed, settings.network_iterations, "4", world.forget_records
        )
    fan_out = [measure_fan_out(shape, settings.fan_out_rounds) for shape in SHAPES] if settings.fan_out_rounds else []
    import_ms = import_medians_ms(settings.cold_start_runs) if settings.cold_start_runs > 0 else {}
    zip_bytes = deployment_zip_bytes() if settings.package else None
    seconds = time.perf_counter() - started
    return BenchResults(settings, findings, latency, import_ms, zip_bytes, seconds=seconds, fan_out=fan_out)


def _distinct_clients(contenders_to_watch: Iterable[Contender]) -> list[Any]:
    """Each AWS client once (both of our contenders share the service's one ECS client)."""
    clients: dict[int, Any] = {}
    for contender in contenders_to_watch:
        for client in contender.clients:
            clients.setdefault(id(client), client)
    return list(clients.values())


def _settings_from(argv: Sequence[str]) -> tuple[BenchSettings, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few iterations; print only unless --output is given")
    parser.add_argument("--iterations", type=int, help="updates per contender and kind, no delay (default 200)")
    parser.add_argument("--network-iterations", type=int, help="the same with the round trip (default 200)")
    parser.add_argument("--round-trip-ms", type=float, help="simulated round trip per AWS call (default 30)")
    parser.add_argument("--cold-start-runs", type=int, help="fresh interpreters per import (default 9; 0 skips)")
    parser.add_argument("--no-package", action="store_true", help="skip `chalice package`")
    parser.add_argument("--fan-out-rounds", type=int, help="10-service rollouts per contender and shape (default 15)")
    parser.add_argument("--output", type=Path, help=f"write the results here (default {RESULTS_FILE.name})")
    arguments = parser.parse_args(argv)
    overrides = {
        "iterations": arguments.iterations,
        "network_iterations": arguments.network_iterations,
        "round_trip_ms": arguments.round_trip_ms,
        "cold_start_runs": arguments.cold_start_runs,
        "fan_out_rounds": arguments.fan_out_rounds,
    }
    settings = replace(
        QUICK if arguments.quick else BenchSettings(),
        **{name: value for name, value in overrides.items() if value is not None},
    )
    if arguments.no_package:
        settings = replace(settings, package=False)
    return settings, arguments.output or (None if arguments.quick else RESULTS_FILE)


def main(argv: Sequence[str] | None = None) -> int:
    """Run from the command line; exit 1 when this project's update breaks its promise (calls or fidelity)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    settings, output = _settings_from(arguments)
    results = run_benchmark(settings)
    print(render_table(results, THEIRS))
    if results.fan_out:
        print("\n".join(["", *render_fan_out(results.fan_out)]))
    if output is not None:
        output.write_text(render_results_file(results, THEIRS, " ".join([".venv/bin/python bench/run.py", *arguments])))
        print(f"\nwritten to {output}")
    problems = broken_promises(results.findings, THEIRS, OURS_DIRECT)
    for problem in problems:
        print(f"PROMISE BROKEN: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
