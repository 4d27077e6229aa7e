"""Fidelity: compare the revision a tool registered with the one it replaced, field by field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.access.audit import Provenance
from chalicelib.core.taskdef import PREVIOUS_TASK_DEFINITION_TAG, READ_ONLY_FIELDS, FieldChange, diff

# Tags this project adds on purpose: where /rollback goes back to, and the audit trail of POST /update.
BOOKKEEPING_TAGS = {
    PREVIOUS_TASK_DEFINITION_TAG: "rollback",
    **dict.fromkeys(Provenance.of_request({}, "update", "local").tags(), "audit"),
}
BOOKKEEPING_PATHS = frozenset(f"tags.{key}" for key in BOOKKEEPING_TAGS)


def bookkeeping_purpose(change: FieldChange) -> str:
    """Why this project adds the tag a bookkeeping change is about ("rollback" or "audit")."""
    return BOOKKEEPING_TAGS[change.path.removeprefix("tags.")]


@dataclass(frozen=True)
class FidelityReport:
    """What differs between the old revision and the new one, sorted by what it means."""

    image_changes: list[FieldChange]
    bookkeeping: list[FieldChange]
    lost: list[FieldChange]
    added: list[FieldChange]
    altered: list[FieldChange]
    replaced_revision: bool

    @property
    def faithful(self) -> bool:
        """True when only the image changed (and this project's bookkeeping tags were added)."""
        return self.replaced_revision and not (self.lost or self.added or self.altered)


def comparable(revision: Mapping[str, Any]) -> dict[str, Any]:
    """A revision as DescribeTaskDefinition (with tags) returns it, minus the fields ECS sets, tags as a map."""
    fields = {key: value for key, value in revision.items() if key not in READ_ONLY_FIELDS | {"tags"}}
    fields["tags"] = {tag["key"]: tag["value"] for tag in revision.get("tags", [])}
    return fields


def compare_revisions(old: Mapping[str, Any], new: Mapping[str, Any], changed_container: str) -> FidelityReport:
    """Sort every field change between two revisions into image, bookkeeping, lost, added and altered."""
    image_path = f"containerDefinitions[{changed_container}].image"
    changes = diff(comparable(old), comparable(new))
    return FidelityReport(
        image_changes=[c for c in changes if c.path == image_path],
        bookkeeping=[c for c in changes if c.path in BOOKKEEPING_PATHS and c.old is None],
        lost=[c for c in changes if c.path != image_path and c.old is not None and c.new is None],
        added=[c for c in changes if c.path not in BOOKKEEPING_PATHS and c.old is None and c.new is not None],
        altered=[c for c in changes if c.path != image_path and c.old is not None and c.new is not None],
        replaced_revision=old.get("taskDefinitionArn") != new.get("taskDefinitionArn"),
    )
