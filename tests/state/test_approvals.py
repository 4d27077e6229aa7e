"""What a service's tags ask of a change, and an approval's item read back as it was written (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.core.errors import ApprovalTagError
from chalicelib.state import approvals
from chalicelib.state.table import from_item


def tagged(votes: str | None = None, hours: str | None = None) -> dict[str, object]:
    tags = []
    if votes is not None:
        tags.append({"key": approvals.APPROVALS_TAG, "value": votes})
    if hours is not None:
        tags.append({"key": approvals.DEADLINE_TAG, "value": hours})
    return {"serviceName": "web", "tags": tags}


def test_no_tag_asks_for_nothing_and_zero_is_none() -> None:
    assert approvals.requirement_of({"serviceName": "web"}) == approvals.NONE_REQUIRED
    assert approvals.requirement_of(tagged("0")).required == 0


def test_the_deadline_is_24_hours_unless_the_tag_says_otherwise() -> None:
    assert approvals.requirement_of(tagged("2")) == approvals.Requirement(2, 24)
    assert approvals.requirement_of(tagged(" 3 ", "8")) == approvals.Requirement(3, 8)


@pytest.mark.parametrize(
    ("votes", "hours", "named"), [("9", None, "approvals"), ("1", "0", "deadline"), ("1", "x", "deadline")]
)
def test_a_tag_out_of_range_is_refused_naming_it(votes: str, hours: str | None, named: str) -> None:
    with pytest.raises(ApprovalTagError, match=f"image-updater:approval.*{named}|{named}"):
        approvals.requirement_of(tagged(votes, hours))


def test_an_approval_reads_back_as_it_was_written() -> None:
    now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    written = approvals.Approval(
        id="0123456789abcdef",
        kind=approvals.DEPLOY,
        status=approvals.PENDING,
        cluster="prod",
        services=[
            approvals.ServiceChange(
                "web", "web", "prod/web", "arn:svc", "arn:td:6", [{"name": "app", "image": "r/web:2"}], "RECORD#x"
            )
        ],
        required=2,
        requested_by="ci",
        requested_at=now,
        deadline=now + timedelta(hours=24),
        action="update",
        votes={"alice": {"decision": "approve", "at": "2026-12-06T10:01:00.000Z"}},
        owed=["APPROVAL_REQUESTED"],
    )
    read = approvals.Approval.of_item(from_item(written.item()))
    assert read == written
    assert read.approvals == ["alice"]
    assert read.services[0].images() == {"app": "r/web:2"}
    assert not read.expired_at(now + timedelta(hours=23))
    assert read.expired_at(now + timedelta(hours=24))
