"""Who is asking: a request's principal, from what API Gateway (or the local stage) established (pure).

In order, a request's principal is:

1. the IAM identity that signed it (SigV4), which API Gateway passes as
   `requestContext.identity.userArn` on a stage with IAM sign-in (an assumed
   role's ARN is `arn:aws:sts::<account>:assumed-role/<role>/<session>`);
2. otherwise the id of the API key it carried (`identity.apiKeyId`: API
   Gateway passes no key name);
3. `local` on the local stage, which checks the key (and, with AUTH_MODE=iam,
   the signature) itself; there, a request may say who it stands for with the
   header `x-local-principal: alice` (`local:alice`), so that `make dev` can
   show a second person approving a change (a requester never approves its
   own). Only the local stage reads the header: nothing in AWS does.

What starts a change from outside has a fixed principal of its own, named
here, so that a permissions rule can give each exactly what it needs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LOCAL = "local"
# ECR's "Image Action" events, through EventBridge (the registry_push function).
ECR_EVENTS = "aws:ecr"
# CodePipeline's jobs (the pipeline_deploy function).
CODEPIPELINE = "aws:codepipeline"
# GitHub's signed webhooks (POST /hooks/github).
GITHUB_WEBHOOK = "webhook:github"
# Neither a signature nor a key: only possible if API Gateway were configured to require neither.
ANONYMOUS = "anonymous"

IAM = "iam"
KEY = "key"
SERVICE = "service"

_MAX_LENGTH = 512
LOCAL_PRINCIPAL_HEADER = "x-local-principal"
_LOCAL_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


@dataclass(frozen=True)
class Principal:
    """A request's principal: `id` is what permissions match and records keep; `kind` says how it was known."""

    id: str
    # iam, key, local, service (a fixed principal of an event or a webhook), or recorded (read back from a
    # queued push's provenance)
    kind: str

    @classmethod
    def of_request(cls, request_context: Mapping[str, Any], *, local: bool, local_name: str | None = None) -> Principal:
        """The principal of an API Gateway request (see the module docstring); `local` on the local stage, or
        `local:<local_name>` when the request named itself (a name of letters, digits and `._@-`)."""
        identity = request_context.get("identity") or {}
        user_arn = _text(identity.get("userArn"))
        if user_arn is not None:
            return cls(user_arn, IAM)
        key_id = _text(identity.get("apiKeyId"))
        if key_id is not None:
            return cls(key_id, KEY)
        if not local:
            return cls(ANONYMOUS, KEY)
        if isinstance(local_name, str) and _LOCAL_NAME.fullmatch(local_name.strip()):
            return cls(f"{LOCAL}:{local_name.strip()}", LOCAL)
        return cls(LOCAL, LOCAL)

    @classmethod
    def service(cls, name: str) -> Principal:
        """One of the fixed principals of what starts a change from outside (ECR_EVENTS, CODEPIPELINE, ...)."""
        return cls(name, SERVICE)

    def as_dict(self) -> dict[str, str]:
        """JSON shape."""
        return {"principal": self.id, "kind": self.kind}


def _text(value: Any) -> str | None:
    return value.strip()[:_MAX_LENGTH] if isinstance(value, str) and value.strip() else None


_ASSUMED_ROLE = re.compile(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+")
# IAM Identity Center's roles: the session name is the person's user name, set by Identity Center, not chosen.
_SSO_ROLE_PREFIX = "AWSReservedSSO_"


def person_of(principal: str) -> str:
    """Who a principal is, as far as "each counts once" and "not one's own change" go.

    Whoever may assume a role chooses the session name, so every session of a role is one person: the role
    (`arn:aws:iam::<account>:role/<name>`, in lower case, as IAM's role names are case-insensitive). IAM
    Identity Center's roles are the exception: their session name is the signed-in user, so each stays apart.
    Any other principal (an IAM user, a key id, a trigger) is itself.
    """
    found = _ASSUMED_ROLE.fullmatch(principal)
    if found is None or found.group(3).startswith(_SSO_ROLE_PREFIX):
        return principal
    partition, account, role = found.groups()
    return f"arn:{partition}:iam::{account}:role/{role}".lower()
