"""How ECS words a circuit-breaker rollback, read the same way everywhere (pure).

The rollback deployment's rolloutStateReason says "ECS deployment circuit
breaker: rolling back to deploymentId ecs-svc/…", a service event says
"(service web) rolling back to deployment ecs-svc/…", and the deployment event
says much the same. The wording varies, so only "rolling back" is matched,
case-insensitively; the deployment it goes back to is read when named.
"""

from __future__ import annotations

import re

_ROLLING_BACK = re.compile(r"rolling back", re.IGNORECASE)
_TARGET = re.compile(r"rolling back to (?:deployment(?:\s*id)?\s*)?(?P<id>[A-Za-z0-9/_.:-]+?)\.?(?:\s|$)", re.I)


def says_rolling_back(text: str | None) -> bool:
    """True when ECS's text says the circuit breaker is rolling back ("rolling back", in any case)."""
    return bool(_ROLLING_BACK.search(text or ""))


def rollback_target(text: str | None) -> str | None:
    """The deployment a rollback goes back to, when the text names it."""
    match = _TARGET.search(text or "")
    return match.group("id") if match else None
