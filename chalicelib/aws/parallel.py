"""Run independent AWS calls at once, each keeping the request's time budget.

A ContextVar (the time budget of chalicelib.aws) does not cross into a thread
by itself, so every task runs in a copy of the caller's context. boto3 clients
are thread-safe; sessions are not (chalicelib.aws makes clients under a lock,
from whichever thread asks first).
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Value = TypeVar("Value")

# ECS and DynamoDB take a few concurrent calls per client well; more would only queue or be throttled.
MAX_PARALLEL = 10
# One pool for the process (a warm Lambda keeps it): starting threads for every wave of calls costs more
# than the calls' own client-side work. Its workers never wait on the pool themselves (see `each`).
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_in_worker = threading.local()


@dataclass(frozen=True)
class Outcome(Generic[Item, Value]):
    """What one task gave: its value, or the exception it raised."""

    item: Item
    value: Value | None = None
    error: Exception | None = None


def each(task: Callable[[Item], Value], items: Sequence[Item], limit: int = MAX_PARALLEL) -> list[Outcome[Item, Value]]:
    """`task(item)` for every item, at most `limit` at a time, outcomes in the order of `items`.

    A single item runs in the caller's thread. Exceptions are returned, not raised,
    so the caller sees every outcome before deciding what to undo.
    """
    if len(items) <= 1 or getattr(_in_worker, "active", False):
        # One item, or already in a worker (a task that fans out itself): here, so the pool can never deadlock.
        return [_run(task, item) for item in items]
    pool = _shared_pool()
    outcomes: list[Outcome[Item, Value]] = []
    for start in range(0, len(items), limit):
        chunk = items[start : start + limit]
        futures = [pool.submit(contextvars.copy_context().run, _run_in_worker, task, item) for item in chunk]
        outcomes.extend(future.result() for future in futures)
    return outcomes


def values(task: Callable[[Item], Value], items: Sequence[Item], limit: int = MAX_PARALLEL) -> list[Value]:
    """`task(item)` for every item, at once; the first exception (in item order) is raised after all finish."""
    outcomes = each(task, items, limit)
    for outcome in outcomes:
        if outcome.error is not None:
            raise outcome.error
    return [outcome.value for outcome in outcomes]  # type: ignore[misc]


def start(task: Callable[[Item], Value], item: Item) -> Callable[[], Outcome[Item, Value]]:
    """Start `task(item)` now, alongside what the caller does next; the function returned waits for its outcome.

    From inside a worker it starts nothing (a worker must never wait on the pool): the task then runs when
    its outcome is first asked for.
    """
    if getattr(_in_worker, "active", False):
        return functools.cache(lambda: _run(task, item))
    future = _shared_pool().submit(contextvars.copy_context().run, _run_in_worker, task, item)
    return future.result


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="aws-call")
        return _pool


def _run_in_worker(task: Callable[[Item], Value], item: Item) -> Outcome[Item, Value]:
    _in_worker.active = True
    try:
        return _run(task, item)
    finally:
        _in_worker.active = False


def _run(task: Callable[[Item], Value], item: Item) -> Outcome[Item, Value]:
    try:
        return Outcome(item, value=task(item))
    except Exception as error:  # handed back to the caller, who decides what to undo
        return Outcome(item, error=error)
