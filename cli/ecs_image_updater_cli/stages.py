"""ECS's lifecycle stages of a service deployment, and the stage `--wait-until` may stop waiting at.

A service deployment moves through these stages in this order (ECS's own enum);
a strategy may skip some (a rolling deployment shifts no test traffic), so a
stage counts as reached once the deployment is at it or at any stage after it.
"""

from __future__ import annotations

import argparse

LIFECYCLE_STAGES = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
)
COMPLETED_TARGET = "COMPLETED"  # --wait-until completed: today's --wait, to the outcome


def spelled_for_people(name: str) -> str:
    """`bake-time` for BAKE_TIME: how the command line writes a stage."""
    return name.lower().replace("_", "-")


VALID_TARGETS = ", ".join(spelled_for_people(name) for name in (COMPLETED_TARGET, *LIFECYCLE_STAGES))


def parse_wait_target(text: str) -> str:
    """COMPLETED or the stage named by `text`, in any case, with '-' or '_' between words."""
    name = text.strip().upper().replace("-", "_")
    if name != COMPLETED_TARGET and name not in LIFECYCLE_STAGES:
        raise ValueError(f"'{text}' is not a stage to wait until: give one of {VALID_TARGETS}")
    return name


def wait_target_argument(text: str) -> str:
    """parse_wait_target for argparse: an unknown name is a usage error that names the valid ones."""
    try:
        return parse_wait_target(text)
    except ValueError as unknown:
        raise argparse.ArgumentTypeError(str(unknown)) from None


def stage_reached(target: str, stage: str | None) -> bool:
    """True when `stage` is `target` or a stage after it; False for an unknown or missing stage."""
    if stage is None or stage not in LIFECYCLE_STAGES:
        return False
    return LIFECYCLE_STAGES.index(stage) >= LIFECYCLE_STAGES.index(target)
