"""`--auth iam`: requests signed with AWS Signature Version 4 for a stage that uses IAM sign-in.

botocore signs (the optional dependency `pip install 'ecs-image-updater[iam]'`),
with the standard AWS credential chain: the environment, a profile, SSO, web
identity (GitHub's OIDC through aws-actions/configure-aws-credentials), a
container or instance role. Nothing of SigV4 is written here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ecs_image_updater_cli.exits import RefusedError

SERVICE = "execute-api"
REGION_VARIABLES = ("ECS_IMAGE_UPDATER_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
INSTALL_HINT = "pip install 'ecs-image-updater[iam]'"


class Signer:
    """Signs each request afresh (a retried request gets a new date) with the credentials of the chain."""

    def __init__(self, url: str, environ: Mapping[str, str]) -> None:
        try:
            import botocore.session
        except ImportError:
            raise RefusedError(f"--auth iam signs with botocore, which is not installed: {INSTALL_HINT}") from None
        self._session: Any = botocore.session.Session()
        self.region = region_of(url, environ, self._session)

    def headers(self, method: str, url: str, headers: Mapping[str, str], payload: bytes | None) -> dict[str, str]:
        """`headers` with the signature's (Authorization, X-Amz-Date, and a session token if any) added."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import BotoCoreError

        try:
            credentials = self._session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except BotoCoreError as failure:
            raise RefusedError(f"--auth iam could not get AWS credentials: {failure}") from None
        if frozen is None or not frozen.access_key:
            raise RefusedError(
                "--auth iam found no AWS credentials (environment, profile, SSO, web identity or role): "
                "sign in first, e.g. aws sso login, or aws-actions/configure-aws-credentials in GitHub Actions"
            )
        request = AWSRequest(method=method, url=url, data=payload or b"", headers=dict(headers))
        SigV4Auth(frozen, SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())


def region_of(url: str, environ: Mapping[str, str], session: Any = None) -> str:
    """The API's region: from an execute-api host name, else ECS_IMAGE_UPDATER_REGION, AWS_REGION,
    AWS_DEFAULT_REGION, or the profile's region (a custom domain names no region)."""
    host = (urlsplit(url).hostname or "").lower()
    found = _API_HOST.match(host)
    if found:
        return found["region"]
    for name in REGION_VARIABLES:
        value = (environ.get(name) or "").strip()
        if value:
            return value
    configured = session.get_config_variable("region") if session is not None else None
    if configured:
        return str(configured)
    raise RefusedError(
        f"--auth iam needs the API's region, which {host} does not name: set ECS_IMAGE_UPDATER_REGION or AWS_REGION"
    )
