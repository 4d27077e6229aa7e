"""moto's server as the benchmark's AWS, speaking HTTP/1.1 with keep-alive as AWS's endpoints do.

moto's own `moto.server` answers HTTP/1.0, so every call opens a TCP connection
and the server starts a thread for it; AWS keeps a client's connections open,
and botocore reuses them. Two more costs of moto's server that no AWS endpoint
has are taken out, because they are paid one request after the other and so
weigh on whoever sends calls side by side: it looks up which backend serves a
request again on every request (listing its own package directory under a lock
all requests share), and it logs every request to the terminal. Run as
`python bench/aws_server.py PORT`.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

LOOPBACK = "127.0.0.1"


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, with persistent connections and no line per request on the terminal."""

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing for an answered request (errors are still logged)."""


class RememberingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering the backend of each host it has seen.

    The answer depends on the host alone and moto's fixed URL patterns, so it
    is the same every time; the lookup runs under the dispatcher's own lock, as
    moto's does.
    """

    def __init__(self, create_app: Any) -> None:
        super().__init__(create_app)
        self._backend_of_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        """The backend serving `host`, looked up once."""
        if host not in self._backend_of_host:
            self._backend_of_host[host] = super().get_backend_for_host(host)
        return self._backend_of_host[host]


def main(port: int) -> None:
    """Serve moto on loopback:`port` until killed."""
    application = RememberingDispatcher(create_backend_app)
    run_simple(LOOPBACK, port, application, threaded=True, request_handler=KeepAliveRequestHandler)


if __name__ == "__main__":
    main(int(sys.argv[1]))
