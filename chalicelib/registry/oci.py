"""Any registry but ECR: the OCI distribution API, `HEAD /v2/<name>/manifests/<tag-or-digest>`.

Anonymous first; a `401` with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`
is answered with a token from the realm (public images on Docker Hub, GHCR,
Quay, public ECR need no credentials for it), a `Basic` challenge with the
credentials, when there are any. An index is fetched by its digest to read its
platforms. HTTPS only, but for a registry on this machine (`localhost`,
`127.0.0.0/8`, `::1`), as in the tests and `make dev`. Redirects are not
followed (credentials must not go elsewhere). Every request is bounded by the
request's time budget.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.aws import budget
from chalicelib.core.config import is_loopback
from chalicelib.core.images import DOCKER_HUB, ImageReference
from chalicelib.core.manifests import ACCEPTED, Manifest, is_index, platforms_of
from chalicelib.registry import ImageMissing, RegistryUnreachable

DOCKER_HUB_API = "registry-1.docker.io"
ATTEMPT_SECONDS = 3.0
MAX_BODY_BYTES = 1024 * 1024
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
USER_AGENT = "ecs-image-updater"


@dataclass(frozen=True)
class Credentials:
    """A registry user name and password (from the container's repositoryCredentials secret)."""

    username: str
    password: str


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def location(reference: ImageReference) -> tuple[str, str]:
    """The registry's API host and the repository's name in it (`nginx` is `registry-1.docker.io`,
    `library/nginx`)."""
    host, _, name = reference.canonical_repository().partition("/")
    return (DOCKER_HUB_API if host == DOCKER_HUB else host), name


def lookup(reference: ImageReference, credentials: Credentials | None = None) -> Manifest:
    """The manifest `reference` names; ImageMissing or RegistryUnreachable otherwise."""
    host, name = location(reference)
    base = f"{'http' if _is_loopback(host) else 'https'}://{host}/v2/{name}/manifests/"
    version = reference.digest or reference.tag or "latest"
    session = _Session(host, credentials)
    answer = session.request("HEAD", base + urllib.parse.quote(version, safe=":"))
    if answer.status == 404:
        raise ImageMissing(f"the registry has no {reference} (404)")
    if answer.status != 200:
        raise RegistryUnreachable(host, _why(answer, credentials))
    media_type = answer.headers.get("content-type", "").split(";")[0].strip()
    digest = answer.headers.get("docker-content-digest") or ""
    if not digest or is_index(media_type):
        fetched = session.request("GET", base + urllib.parse.quote(digest or version, safe=":"))
        if fetched.status != 200:
            raise RegistryUnreachable(host, _why(fetched, credentials))
        digest = digest or "sha256:" + hashlib.sha256(fetched.body).hexdigest()
        media_type = fetched.headers.get("content-type", media_type).split(";")[0].strip()
        if is_index(media_type):
            try:
                return Manifest(digest, media_type, platforms_of(fetched.body))
            except ValueError as unreadable:
                raise RegistryUnreachable(host, f"its index of {reference} cannot be read: {unreadable}") from None
    return Manifest(digest, media_type)


class _Session:
    """Requests to one registry, with the authorization its first challenge asked for."""

    def __init__(self, host: str, credentials: Credentials | None) -> None:
        self.host = host
        self.credentials = credentials
        self.authorization: str | None = None

    def request(self, method: str, url: str) -> _Answer:
        answer = self._send(method, url, self.authorization)
        if answer.status == 401 and self.authorization is None:
            self.authorization = self._answer_challenge(answer.headers.get("www-authenticate", ""))
            if self.authorization is not None:
                answer = self._send(method, url, self.authorization)
        return answer

    def _answer_challenge(self, challenge: str) -> str | None:
        scheme, _, parameters = challenge.strip().partition(" ")
        if scheme.lower() == "basic":
            return _basic(self.credentials) if self.credentials else None
        if scheme.lower() != "bearer":
            return None
        fields = dict(_CHALLENGE.findall(parameters))
        realm = fields.pop("realm", None)
        if not realm or not realm.startswith(("https://", "http://")):
            return None
        if realm.startswith("http://") and not _is_loopback(urllib.parse.urlsplit(realm).hostname or ""):
            return None  # a token over plain HTTP only from this machine
        query = urllib.parse.urlencode({key: value for key, value in fields.items() if key in ("service", "scope")})
        answer = self._send("GET", f"{realm}?{query}" if query else realm, _basic(self.credentials))
        if answer.status != 200:
            raise RegistryUnreachable(self.host, f"its token service answered {answer.status}")
        try:
            token = json.loads(answer.body)
        except ValueError:
            raise RegistryUnreachable(self.host, "its token service answered with no JSON") from None
        value = (token.get("token") or token.get("access_token")) if isinstance(token, Mapping) else None
        return f"Bearer {value}" if isinstance(value, str) and value else None

    def _send(self, method: str, url: str, authorization: str | None) -> _Answer:
        headers = {"Accept": ", ".join(ACCEPTED), "User-Agent": USER_AGENT}
        if authorization:
            headers["Authorization"] = authorization
        request = urllib.request.Request(url, headers=headers, method=method)  # noqa: S310 - http(s) built above
        left = budget.time_left()
        timeout = ATTEMPT_SECONDS if left is None else min(ATTEMPT_SECONDS, left)
        if timeout <= 0.05:
            raise RegistryUnreachable(self.host, "no time was left in the request's budget to ask it")
        try:
            with _opener.open(request, timeout=timeout) as response:
                return _Answer(response.status, _lower(response.headers), response.read(MAX_BODY_BYTES))
        except urllib.error.HTTPError as answered:
            body = answered.read(MAX_BODY_BYTES) if method != "HEAD" else b""
            return _Answer(answered.code, _lower(answered.headers), body)
        except (OSError, http.client.HTTPException) as unreachable:
            reason = getattr(unreachable, "reason", None) or unreachable
            raise RegistryUnreachable(self.host, f"it could not be reached: {reason}") from None


def _why(answer: _Answer, credentials: Credentials | None) -> str:
    if answer.status in (401, 403):
        which = "the credentials of the container's repositoryCredentials" if credentials else "anonymous access"
        return f"it refused {which} ({answer.status})"
    if 300 <= answer.status < 400:
        return f"it answered with a redirect ({answer.status}), which is not followed"
    return f"it answered {answer.status}"


def _basic(credentials: Credentials | None) -> str | None:
    if credentials is None:
        return None
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _lower(headers: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in (headers.items() if headers is not None else [])}


def _is_loopback(host: str) -> bool:
    """A registry host (with or without a port, `[::1]:5000` too) on this machine."""
    return is_loopback(urllib.parse.urlsplit(f"//{host}").hostname or "")
