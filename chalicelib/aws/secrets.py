"""Secrets Manager and Systems Manager parameters: a webhook's signing secret (read once per container), a
registry's credentials, and whether the secrets a revision references exist (never reading their values)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from chalicelib.aws import budget, clients
from chalicelib.core.errors import AwsCallError

_cache: dict[str, str] = {}
_lock = threading.Lock()
# GetParameters takes 10 names a call.
PARAMETERS_PER_CALL = 10


def region_of(arn: str) -> str | None:
    """The region an ARN names (`arn:aws:secretsmanager:<region>:…`), or None for a plain name."""
    parts = arn.split(":")
    return parts[3] or None if arn.startswith("arn:") and len(parts) > 3 else None


def secret_string(secret_id: str, client: Any = None) -> str:
    """The SecretString of the secret `secret_id` (a name or an ARN), fetched on first use and kept; `client`:
    the Secrets Manager client to ask (in another account, the target role's), the home one by default."""
    with _lock:
        if secret_id in _cache:
            return _cache[secret_id]
    client = client or clients.regional_client("secretsmanager", region_of(secret_id))
    with budget.within(budget.ONE_CALL_SECONDS):
        answer = clients.call(client.get_secret_value, "GetSecretValue", {}, SecretId=secret_id)
    value = answer.get("SecretString")
    if not isinstance(value, str) or not value:
        raise AwsCallError("GetSecretValue", f"the secret {secret_id} holds no SecretString")
    with _lock:
        _cache[secret_id] = value
    return value


def secret_exists(arn: str, client: Any = None) -> bool:
    """True when the Secrets Manager secret exists (DescribeSecret: its value is never read); AwsCallError
    when Secrets Manager cannot say. A `valueFrom` with a JSON key, stage or version names the secret first."""
    secret = ":".join(arn.split(":")[:7])
    client = client or clients.regional_client("secretsmanager", region_of(arn))
    try:
        clients.call(
            client.describe_secret, "DescribeSecret", {"ResourceNotFoundException": _NotFound}, SecretId=secret
        )
    except _NotFound:
        return False
    return True


def missing_parameters(names: Sequence[str], region: str | None, client: Any = None) -> set[str]:
    """Which of these SSM parameters (names or ARNs, of one region) do not exist; GetParameters without
    decryption, ten at a time, and nothing done with the values."""
    client = client or clients.regional_client("ssm", region)
    missing: set[str] = set()
    for start in range(0, len(names), PARAMETERS_PER_CALL):
        batch = list(names[start : start + PARAMETERS_PER_CALL])
        answer = clients.call(client.get_parameters, "GetParameters", {}, Names=batch, WithDecryption=False)
        missing.update(str(name) for name in answer.get("InvalidParameters") or [])
    return missing


def forget() -> None:
    """Forget the secrets read (tests start each AWS world afresh)."""
    with _lock:
        _cache.clear()


class _NotFound(AwsCallError):
    def __init__(self, message: str) -> None:
        super().__init__("DescribeSecret", message)
