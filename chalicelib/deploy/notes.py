"""How a failed update words what it did and what it left (pure): the notes appended to its error's message.

A person reading a failure must learn, in one message, which service and step
failed, what was put back, and what is left for them to do by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.core import taskdef
from chalicelib.core.errors import AwsCallError, UpdateError
from chalicelib.core.results import revision_of


def register_failed(services: Sequence[str]) -> str:
    """A registration failed: which services it was for, and that none was changed."""
    return f"it failed for service {names(services)}; no service was changed"


def update_failed(first: str, others: Sequence[tuple[str, BaseException | None]]) -> str:
    """UpdateService failed for `first` (and `others`, each with its error)."""
    described = ", ".join(f"'{name}' ({message(error)})" for name, error in others)
    return f"UpdateService failed for service '{first}'" + (f" and for {described}" if described else "")


def put_back(services: Sequence[str]) -> str:
    """These services were pointed back at the revision they ran."""
    return f"service {names(services)} {'was' if len(services) == 1 else 'were'} put back on the previous revision"


def not_put_back(service: str, error: BaseException | None, new: Mapping[str, Any], old: Mapping[str, Any]) -> str:
    """A service could not be put back: what it runs and what to do."""
    return (
        f"service '{service}' could not be put back ({message(error)}) and still runs "
        f"{taskdef.revision_label(new)}: put it back on {taskdef.revision_label(old)} by hand"
    )


def redeployed(services: Sequence[str]) -> str:
    """These services were only redeployed on their running revision (nothing to put back)."""
    return f"service {names(services)} had been redeployed on its running revision"


def still_on(service: str | None, running_arn: str) -> str:
    """A failed service was read again and still ran its old revision (`service` None: the only one)."""
    whose = "the service was" if service is None else f"service '{service}' was"
    return f"{whose} still on {revision_label_of_arn(running_arn)} when checked"


def unchecked(service: str | None, new: Mapping[str, Any], unreadable: UpdateError | None) -> str:
    """A failed service could not be read again: its new revision is kept registered, and why."""
    whose = "the service" if service is None else f"service '{service}'"
    return (
        f"could not check whether {whose} took revision {taskdef.revision_label(new)} "
        f"({unreadable.message if unreadable else 'no answer'}), so it was left registered; "
        "deregister it if the service does not run it"
    )


def deregistered(revisions: Sequence[str]) -> str:
    """These new revisions were deregistered."""
    if len(revisions) == 1:
        return f"the new revision {revisions[0]} was deregistered, so none is left behind"
    return f"the new revisions {', '.join(revisions)} were deregistered, so none is left behind"


def not_deregistered(revision: str, error: BaseException | None) -> str:
    """A new revision could not be deregistered."""
    return f"the new revision {revision} could not be deregistered ({message(error)}); deregister it by hand"


def names(services: Sequence[str]) -> str:
    """`'a', 'b'`."""
    return ", ".join(f"'{name}'" for name in services)


def message(error: BaseException | None) -> str:
    """What an error says."""
    return error.message if isinstance(error, UpdateError) else str(error)


def prefixed(failure: UpdateError, prefix: str) -> UpdateError:
    """The same failure, its message starting with `prefix` (which service it is about)."""
    text = prefix + failure.message
    if isinstance(failure, AwsCallError):
        return type(failure)(failure.step, text, failure.outcome_unknown)
    return type(failure)(text)


def with_notes(failure: UpdateError, notes: Sequence[str]) -> UpdateError:
    """The same failure, its message followed by the notes."""
    if not notes:
        return failure
    text = f"{failure.message}; {'; '.join(notes)}"
    if isinstance(failure, AwsCallError):
        return type(failure)(failure.step, text, failure.outcome_unknown)
    return type(failure)(text)


def revision_label_of_arn(arn: str) -> str:
    """`family:revision` of a task definition ARN."""
    return taskdef.revision_label(revision_of(arn))
