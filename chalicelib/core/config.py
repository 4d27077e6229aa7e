"""Settings read from the environment, in one place (read per request, so tests can set them)."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)
DEFAULT_HISTORY_DAYS = 400


@dataclass(frozen=True)
class Settings:
    """The service's settings for one request."""

    # When set (the `local` stage), the app checks `x-api-key` itself: `chalice local`
    # and the Chalice test client do not enforce `api_key_required`.
    local_api_key: str | None
    # The `local` stage sets it: every AWS endpoint must then be on this machine.
    require_loopback_aws: bool = False
    # Allowlists; None means unset (everything allowed, with a warning).
    allowed_image_prefixes: tuple[str, ...] | None = None
    allowed_clusters: tuple[str, ...] | None = None
    allowed_services: tuple[str, ...] | None = None
    # Only `sha256:` digests may be deployed.
    require_digest: bool = False
    # DynamoDB table for the per-service locks and the deployment records; None: neither (with a warning).
    state_table: str | None = None
    # Deployment records expire after this many days (the table's TTL).
    history_days: int = DEFAULT_HISTORY_DAYS
    # SNS topic told of every outcome of a recorded deployment; None: nobody is told.
    notify_topic_arn: str | None = None
    # The SQS queue (name) a push's work goes on, one item per service; None: pushes are refused.
    push_queue: str | None = None
    # How callers sign in: "key" (an API key) or "iam" (SigV4, with the key kept for metering). The routes'
    # authorizers are part of the template, so it is read when the app is packaged too.
    auth_mode: str = "key"
    # The permissions file (YAML), relative to the app's directory; None: no rules (everything the allowlists allow).
    permissions_file: str | None = None
    # Secrets Manager secrets (names or ARNs) holding the HMAC keys of the signed webhooks; None: /hooks/github
    # takes nothing, /hooks/push needs no signature.
    github_webhook_secret: str | None = None
    push_webhook_secret: str | None = None
    # Before anything is written, check that each image changed exists (and offers the task's platform), and
    # that secrets a revision newly references exist: "require" (a registry that cannot answer refuses the
    # change), "warn" (it lets the change through with a warning), "off".
    verify_images: str = "require"
    # Other accounts and regions the service may reach (None: home only), the role it assumes in each account,
    # and the external id that role's trust policy asks for.
    target_accounts: tuple[str, ...] | None = None
    target_regions: tuple[str, ...] | None = None
    target_role_name: str = "ecs-image-updater-target"
    target_external_id: str | None = None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from `environ` (the process environment by default)."""
    env = os.environ if environ is None else environ
    return Settings(
        local_api_key=env.get("LOCAL_API_KEY") or None,
        require_loopback_aws=_is_true(env.get("REQUIRE_LOOPBACK_AWS", "")),
        allowed_image_prefixes=_list(env.get("ALLOWED_IMAGE_PREFIXES")),
        allowed_clusters=_list(env.get("ALLOWED_CLUSTERS")),
        allowed_services=_list(env.get("ALLOWED_SERVICES")),
        require_digest=_is_true(env.get("REQUIRE_DIGEST", "")),
        state_table=(env.get("STATE_TABLE") or "").strip() or None,
        history_days=_positive_int(env.get("HISTORY_DAYS"), DEFAULT_HISTORY_DAYS, "HISTORY_DAYS"),
        notify_topic_arn=(env.get("NOTIFY_TOPIC_ARN") or "").strip() or None,
        push_queue=(env.get("PUSH_QUEUE") or "").strip() or None,
        auth_mode=auth_mode(env),
        permissions_file=(env.get("PERMISSIONS_FILE") or "").strip() or None,
        github_webhook_secret=(env.get("GITHUB_WEBHOOK_SECRET") or "").strip() or None,
        push_webhook_secret=(env.get("PUSH_WEBHOOK_SECRET") or "").strip() or None,
        verify_images=_choice(env.get("VERIFY_IMAGES"), VERIFY_MODES, "VERIFY_IMAGES"),
        target_accounts=_list(env.get("TARGET_ACCOUNTS")),
        target_regions=_list(env.get("TARGET_REGIONS")),
        target_role_name=(env.get("TARGET_ROLE_NAME") or "").strip() or "ecs-image-updater-target",
        target_external_id=(env.get("TARGET_EXTERNAL_ID") or "").strip() or None,
    )


VERIFY_MODES = ("require", "warn", "off")


def _choice(value: str | None, choices: tuple[str, ...], name: str) -> str:
    """One of `choices` (the first when unset); anything else is the first too, with a warning: the safe one."""
    if value is None or not value.strip():
        return choices[0]
    chosen = value.strip().lower()
    if chosen not in choices:
        logger.warning("%s=%r is not one of %s; using %s", name, value, ", ".join(choices), choices[0])
        return choices[0]
    return chosen


AUTH_MODES = ("key", "iam")


def auth_mode(environ: Mapping[str, str] | None = None) -> str:
    """AUTH_MODE: `key` (the default) or `iam`; anything else refuses to start, since a typo must not
    quietly leave a stage without the sign-in it was meant to have."""
    env = os.environ if environ is None else environ
    mode = (env.get("AUTH_MODE") or "key").strip().lower()
    if mode not in AUTH_MODES:
        raise ValueError(f"AUTH_MODE={env.get('AUTH_MODE')!r} is neither 'key' nor 'iam'")
    return mode


def _positive_int(value: str | None, default: int, name: str) -> int:
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number < 1:
        logger.warning("%s=%r is not a positive whole number; using %s", name, value, default)
        return default
    return number


def _list(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated setting: entries trimmed, empty ones dropped; None when unset."""
    if value is None:
        return None
    return tuple(entry.strip() for entry in value.split(",") if entry.strip())


def unsafe_aws_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the AWS endpoints are not all on loopback, or None when they are.

    `AWS_ENDPOINT_URL` must be set (without it the SDK would call real AWS), and
    it and every service-specific `AWS_ENDPOINT_URL_*` must name a loopback host.
    """
    env = os.environ if environ is None else environ
    if _is_true(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")):
        return "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is set, so AWS calls would ignore AWS_ENDPOINT_URL"
    if not env.get("AWS_ENDPOINT_URL"):
        return "AWS_ENDPOINT_URL is not set, so AWS calls would go to real AWS"
    for name in sorted(key for key in env if key.startswith("AWS_ENDPOINT_URL")):
        host = urlsplit(env[name]).hostname or ""
        if not is_loopback(host):
            return f"{name}={env[name]} is not a loopback address"
    return None


def is_loopback(host: str) -> bool:
    """True for `localhost`, `127.0.0.0/8` and `::1` (a host name, without a port)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_true(value: str) -> bool:
    return value.strip().lower() in {"true", "1", "yes"}
