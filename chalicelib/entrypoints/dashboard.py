"""The dashboard's page: `GET /` and its two static files, served by the app itself with no key.

The page holds no data: its script asks the JSON routes with the caller's key
(typed once, kept in the tab's sessionStorage), so loading it needs no sign-in.
Every answer carries a strict Content-Security-Policy (scripts and styles only
from the page's own origin, nothing inline), and the files are read once per
process from chalicelib/dashboard/, which `chalice package` ships with the rest
of chalicelib.
"""

from __future__ import annotations

import functools
from pathlib import Path

from chalice import Blueprint, Response

from chalicelib.core.config import load_settings
from chalicelib.entrypoints.respond import error

dashboard = Blueprint(__name__)
# Neither the key nor a signature: the page must load before the caller has typed a key.
UNSIGNED = {"api_key_required": False, "authorizer": None}
FILES = Path(__file__).resolve().parents[1] / "dashboard"
# The static files a page may ask for, and their types; any other name is a 404 (never a path on disk).
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
PAGE_TYPE = "text/html; charset=utf-8"
AUTH_MODE_PLACEHOLDER = "{{AUTH_MODE}}"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dashboard.route("/", methods=["GET"], **UNSIGNED)
def page() -> Response:
    """The dashboard's page, saying how the stage signs callers in (`key`, or `iam`: a key alone is not enough).

    The page's files and the JSON routes are asked for relative to the page, so it must be at a path that ends
    in `/`: API Gateway also answers the stage's root without one (`…/api`), which is sent on to `…/api/`.
    """
    requested = str((dashboard.current_request.context or {}).get("path") or "/")
    if not requested.endswith("/"):
        return Response(
            body="",
            status_code=301,
            headers={"Location": requested.rsplit("/", 1)[-1] + "/", **SECURITY_HEADERS},
        )
    html = static_file("index.html").replace(AUTH_MODE_PLACEHOLDER, page_auth_mode())
    return Response(body=html, status_code=200, headers={"Content-Type": PAGE_TYPE, **SECURITY_HEADERS})


@dashboard.route("/dashboard/{asset}", methods=["GET"], **UNSIGNED)
def asset(asset: str) -> Response:
    """The page's script or style sheet."""
    if asset not in ASSETS:
        answer = error(404, "NotFoundError", "the dashboard has no such file; it serves app.js and style.css")
        answer.headers.update(SECURITY_HEADERS)
        return answer
    return Response(
        body=static_file(asset), status_code=200, headers={"Content-Type": ASSETS[asset], **SECURITY_HEADERS}
    )


def page_auth_mode() -> str:
    """`iam` where a request needs a SigV4 signature besides the key (API Gateway's on an IAM stage, or the local
    stage's own check with AUTH_MODE=iam): a page in a browser cannot sign, so it says so; `key` otherwise."""
    return load_settings().auth_mode


@functools.cache
def static_file(name: str) -> str:
    """One of the dashboard's files, read once per process."""
    return (FILES / name).read_text(encoding="utf-8")
