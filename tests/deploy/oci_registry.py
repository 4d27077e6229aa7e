"""A small OCI registry on 127.0.0.1 for the tests: manifests by tag and digest, and the auth a registry asks for.

It answers `HEAD` and `GET /v2/<name>/manifests/<reference>` with the media
type and `Docker-Content-Digest` a registry sends, and, as configured, asks
for a bearer token first (`401` with `WWW-Authenticate: Bearer realm=…,
service=…,scope=…`, answered by `GET /token`), for basic credentials, or
fails with a 500. It records every request it saw.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.core.manifests import DOCKER_MANIFEST, OCI_INDEX

TOKEN = "registry-token-0123"


@dataclass
class Seen:
    """One request as the registry saw it."""

    method: str
    path: str
    authorization: str | None
    accept: str | None


@dataclass
class Registry:
    """What the registry holds and how it behaves."""

    host: str = ""
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)  # (name, ref) -> type, body
    auth: str | None = None  # None, "bearer" or "basic"
    credentials: tuple[str, str] = ("robot", "s3cret")
    failing: bool = False
    seen: list[Seen] = field(default_factory=list)

    def push(self, name: str, tag: str, platforms: list[tuple[str, str]] | None = None) -> str:
        """Put an image (an index of `platforms`, when given) under `name:tag`; returns its digest."""
        if platforms is None:
            media_type = DOCKER_MANIFEST
            document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "layers": [{"digest": tag}]}
        else:
            media_type = OCI_INDEX
            entries = [
                {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": "sha256:" + "0" * 64,
                    "size": 1,
                    "platform": {"os": o, "architecture": a},
                }
                for o, a in platforms
            ]
            # An attestation entry, as BuildKit adds: not a platform anyone runs.
            entries.append(
                {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": "sha256:" + "1" * 64,
                    "size": 1,
                    "platform": {"os": "unknown", "architecture": "unknown"},
                }
            )
            document = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries, "tag": tag}
        body = json.dumps(document).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self.manifests[(name, tag)] = (media_type, body)
        self.manifests[(name, digest)] = (media_type, body)
        return digest

    def image(self, name: str, reference: str) -> str:
        """The image reference of `name` at `reference` (a tag) in this registry."""
        return f"{self.host}/{name}:{reference}"


def _handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            path = urlsplit(self.path)
            registry.seen.append(
                Seen(self.command, self.path, self.headers.get("Authorization"), self.headers.get("Accept"))
            )
            if registry.failing:
                return self._send(500, {}, b"{}", body)
            if path.path == "/token":
                return self._token(parse_qs(path.query), body)
            if not self._authorized():
                return self._challenge(path.path, body)
            if not path.path.startswith("/v2/") or "/manifests/" not in path.path:
                return self._send(404, {}, b"{}", body)
            name, _, reference = path.path[len("/v2/") :].partition("/manifests/")
            found = registry.manifests.get((name, reference))
            if found is None:
                return self._send(
                    404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', body
                )
            media_type, content = found
            digest = "sha256:" + hashlib.sha256(content).hexdigest()
            return self._send(200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, content, body)

        def _authorized(self) -> bool:
            given = self.headers.get("Authorization")
            if registry.auth == "bearer":
                return given == f"Bearer {TOKEN}"
            if registry.auth == "basic":
                user, password = registry.credentials
                return given == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            return True

        def _challenge(self, path: str, body: bool) -> None:
            if registry.auth == "bearer":
                name = path[len("/v2/") :].partition("/manifests/")[0]
                realm = f"http://{registry.host}/token"
                value = f'Bearer realm="{realm}",service="{registry.host}",scope="repository:{name}:pull"'
            else:
                value = 'Basic realm="registry"'
            self._send(401, {"WWW-Authenticate": value}, b'{"errors":[{"code":"UNAUTHORIZED"}]}', body)

        def _token(self, query: dict[str, list[str]], body: bool) -> None:
            if query.get("service") != [registry.host] or not (query.get("scope") or [""])[0].startswith("repository:"):
                return self._send(400, {}, b"{}", body)
            self._send(200, {"Content-Type": "application/json"}, json.dumps({"token": TOKEN}).encode(), body)

        def _send(self, status: int, headers: dict[str, str], content: bytes, body: bool) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if body:
                self.wfile.write(content)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def log_message(self, *_args: Any) -> None:
            """Quiet."""

    return Handler


@contextmanager
def serve() -> Iterator[Registry]:
    """A registry on 127.0.0.1 (a free port) until the block ends."""
    registry = Registry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    registry.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
