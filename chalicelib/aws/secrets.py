"""Secrets from Secrets Manager, read once per container (a webhook's signing secret)."""

from __future__ import annotations

import threading

from chalicelib.aws import budget, clients
from chalicelib.core.errors import AwsCallError

_cache: dict[str, str] = {}
_lock = threading.Lock()


def secret_string(secret_id: str) -> str:
    """The SecretString of the secret `secret_id` (a name or an ARN), fetched on first use and kept."""
    with _lock:
        if secret_id in _cache:
            return _cache[secret_id]
    with budget.within(budget.ONE_CALL_SECONDS):
        answer = clients.call(
            clients.secretsmanager_client().get_secret_value, "GetSecretValue", {}, SecretId=secret_id
        )
    value = answer.get("SecretString")
    if not isinstance(value, str) or not value:
        raise AwsCallError("GetSecretValue", f"the secret {secret_id} holds no SecretString")
    with _lock:
        _cache[secret_id] = value
    return value


def forget() -> None:
    """Forget the secrets read (tests start each AWS world afresh)."""
    with _lock:
        _cache.clear()
