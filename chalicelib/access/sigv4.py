"""The local stage's own check of an AWS Signature Version 4 (in AWS, API Gateway checks it).

`chalice local` has no API Gateway, so a stage with AUTH_MODE=iam checks the
signature of each request itself, the way API Gateway's AWS_IAM authorization
does: service `execute-api`, the local region, the one access key id and
secret the local run was started with, a date at most 15 minutes off, and the
body's SHA-256 inside the signature (a changed body fails). botocore computes
the canonical request and the signature; nothing of SigV4 is written here but
reading the Authorization header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
MAX_SKEW = timedelta(minutes=15)
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


class SignatureRefused(Exception):
    """The request is not signed, or not signed right; the message says which part is wrong."""


@dataclass(frozen=True)
class SignedRequest:
    """A request as it arrived: the path as sent (still percent-encoded), the query decoded, headers lower-case."""

    method: str
    path: str
    query: Mapping[str, Sequence[str]]
    headers: Mapping[str, str]
    body: bytes


def verify(request: SignedRequest, access_key_id: str, secret: str, region: str, now: datetime | None = None) -> None:
    """Raise SignatureRefused unless `request` is signed with these credentials for execute-api in `region`."""
    match = _AUTHORIZATION.match(request.headers.get("authorization", ""))
    if match is None:
        raise SignatureRefused("the request is not signed with AWS Signature Version 4 (AWS4-HMAC-SHA256)")
    key_id, _, scope = match["credential"].partition("/")
    if not hmac.compare_digest(key_id.encode(), access_key_id.encode()):
        raise SignatureRefused("the access key id is not the one this stage takes")
    timestamp = request.headers.get("x-amz-date", "")
    signed_at = _moment(timestamp)
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_SKEW:
        raise SignatureRefused("the signature's date is more than 15 minutes from now")
    if scope != f"{timestamp[:8]}/{region}/{SERVICE}/aws4_request":
        raise SignatureRefused(f"the signature's scope is not {timestamp[:8]}/{region}/{SERVICE}/aws4_request")
    signed = match["signed"].split(";")
    if "host" not in signed or any(name not in request.headers for name in signed):
        raise SignatureRefused("the signed headers must include host, and every signed header must be sent")
    declared = request.headers.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(request.body).hexdigest():
        raise SignatureRefused("x-amz-content-sha256 is not the SHA-256 of the body")
    expected = _signature(request, signed, timestamp, Credentials(access_key_id, secret), region)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRefused("the signature does not match the request (a wrong secret, or a changed request)")


def _signature(
    request: SignedRequest, signed: Sequence[str], timestamp: str, credentials: Credentials, region: str
) -> str:
    # Over http:// botocore always hashes the body itself; only the headers the client signed take part.
    url = f"http://{request.headers['host']}{request.path}"
    query = _canonical_query(request.query)
    aws_request = AWSRequest(
        method=request.method.upper(),
        url=f"{url}?{query}" if query else url,
        headers={name: request.headers[name] for name in signed},
        data=request.body,
    )
    aws_request.context["timestamp"] = timestamp
    signer = SigV4Auth(credentials, SERVICE, region)
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)


def _canonical_query(query: Mapping[str, Sequence[str]]) -> str:
    """The query encoded as SigV4 wants it (RFC 3986, every pair sorted): what a signing client sent."""
    pairs = sorted(
        (quote(name, safe="-_.~"), quote(value, safe="-_.~")) for name, values in query.items() for value in values
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def _moment(timestamp: str) -> datetime:
    try:
        return datetime.strptime(timestamp, _DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRefused("the request has no X-Amz-Date header of the form 20261206T120000Z") from None
