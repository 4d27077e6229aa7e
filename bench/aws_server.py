"""moto's server as the benchmark's AWS, speaking HTTP/1.1 with keep-alive as AWS's endpoints do.

moto's own `moto.server` answers HTTP/1.0, so every call opens a TCP connection
and the server starts a thread for it; AWS keeps a client's connections open,
and botocore reuses them. Run as `python bench/aws_server.py PORT`.
"""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

LOOPBACK = "127.0.0.1"


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, with persistent connections."""

    protocol_version = "HTTP/1.1"


def main(port: int) -> None:
    """Serve moto on loopback:`port` until killed."""
    application = DomainDispatcherApplication(create_backend_app)
    run_simple(LOOPBACK, port, application, threaded=True, request_handler=KeepAliveRequestHandler)


if __name__ == "__main__":
    main(int(sys.argv[1]))
