"""What the entry points build from the stage's settings: the guard (allowlists and permissions), the reach of
a target, the checks before a write, the state table, locks and the push queue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from chalicelib.access import permissions as permissions_file
from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.guard import Guard
from chalicelib.access.identity import Principal
from chalicelib.aws import accounts, clients, queue
from chalicelib.aws.accounts import Reach
from chalicelib.core.config import Settings, load_settings
from chalicelib.core.errors import NoHistoryError, NoPushQueueError, PermissionsFileError
from chalicelib.core.locations import Location
from chalicelib.core.windows import Window
from chalicelib.deploy import approvals as approval_votes
from chalicelib.deploy.verify import Verifier
from chalicelib.follow import outcomes
from chalicelib.state import approvals, freezes
from chalicelib.state.freezes import FreezeCheck
from chalicelib.state.lock import Locks
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import StateTable

logger = logging.getLogger(__name__)
# The directory app.py is in (the function's task root): PERMISSIONS_FILE is relative to it.
APP_DIRECTORY = Path(__file__).resolve().parents[2]
_loaded: dict[tuple[str, int, int], permissions_file.Permissions] = {}
_warned_no_permissions: list[bool] = []


def policy() -> AccessPolicy:
    """The allowlists and digest rule of the stage."""
    return AccessPolicy.from_settings(load_settings())


def permissions(settings: Settings | None = None) -> permissions_file.Permissions | None:
    """The stage's permissions file, read once per container (again when it changes); None without one."""
    name = (settings or load_settings()).permissions_file
    if name is None:
        if not _warned_no_permissions:
            _warned_no_permissions.append(True)
            logger.warning("PERMISSIONS_FILE is not set: every caller may do everything within the allowlists")
        return None
    path = APP_DIRECTORY / name
    try:
        stat = path.stat()
    except OSError as missing:
        raise PermissionsFileError(f"the permissions file {name} cannot be read: {missing.strerror}") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = permissions_file.load(path, name)
    return _loaded[key]


def verifier(target: Reach | None = None) -> Verifier:
    """The checks before a write, under the stage's VERIFY_IMAGES, with the credentials of the target's account
    (one verifier per request: it keeps the lookups it started)."""
    mode = load_settings().verify_images
    return Verifier(mode, target.client) if target is not None else Verifier(mode)


def reach(cluster: str, *services: str) -> Reach:
    """Where a request's cluster is (home, or another account or region it may reach), and how to reach it."""
    return accounts.reach(cluster, *services)


def home() -> Location:
    """The home account and region (a freeze's cluster names mean its clusters)."""
    return accounts.home()


def guard(principal: Principal) -> Guard:
    """What the stage's allowlists and permissions allow `principal`."""
    settings = load_settings()
    return Guard(principal, AccessPolicy.from_settings(settings), permissions(settings), accounts.home)


def state_table(settings: Settings | None = None) -> StateTable | None:
    """The stage's state table, or None when it keeps none."""
    settings = settings or load_settings()
    return StateTable(clients.dynamodb_client(), settings.state_table) if settings.state_table else None


def record_lookup(table: StateTable | None, where: Location | None = None) -> Callable[[str], DeploymentRecord | None]:
    """The record of an ECS deployment id of a service at home (or in `where`), in `table` (none without one)."""
    return (lambda id_: outcomes.record_of_deployment(table, id_, where)) if table else (lambda _id: None)


def locks(guard: Guard | None = None, action: str | None = None) -> Locks:
    """Where the stage keeps its locks and records, with the windows of its permissions file; with a guard, its
    principal deploys `action` through a freeze where a rule says `bypassFreeze` (chalicelib.state.freezes)."""
    settings = load_settings()

    def windows() -> tuple[Window, ...]:
        rules = permissions(settings)
        return rules.windows if rules is not None else ()

    check = FreezeCheck(windows, home=accounts.home)
    found = Locks(state_table(settings), settings.history_days, check)
    if guard is None or action is None:
        return found
    return found.bypassing(lambda key: guard.bypasses_freeze(action, *freezes.located(key, accounts.home())))


def approval_gate(guard: Guard, action: str) -> approvals.Gate:
    """The update path asks for the approval a service's tags require, unless the guard's rule for `action` on
    the service says `bypassApproval` (chalicelib.deploy.gate)."""
    return approvals.Gate(bypass=lambda key: guard.bypasses_approval(action, *freezes.located(key, accounts.home())))


def approval_table() -> StateTable:
    """The state table, which approvals are kept in."""
    table = state_table()
    if table is None:
        raise NoHistoryError("this stage keeps no approvals: its STATE_TABLE is not set")
    return table


def approval_deployer(guard: Guard) -> approval_votes.Deployer:
    """What the N-th approval deploys with; the approver's rule for `approve` may deploy it through a freeze."""
    return approval_votes.Deployer(reach=reach, locks=locks(guard, permissions_file.APPROVE), verifier=verifier)


def push_table() -> StateTable:
    """The state table, which a push needs (its followers, its decisions, its claims)."""
    table = state_table()
    if table is None:
        raise NoHistoryError("this stage takes no pushes: its STATE_TABLE is not set")
    return table


def push_queue_name() -> str:
    """The queue a push's work goes on."""
    name = load_settings().push_queue
    if name is None:
        raise NoPushQueueError("this stage takes no pushes: its PUSH_QUEUE is not set")
    return name


def enqueue_push_work(bodies: Sequence[str]) -> None:
    """Put a push's work items on the stage's queue."""
    sqs = clients.sqs_client()
    queue.send(sqs, queue.url_of(sqs, push_queue_name()), bodies)
