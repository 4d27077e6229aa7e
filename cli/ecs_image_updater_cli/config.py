"""Where the service is and which key to send: flags, then the environment, then `.api.env`.

For each of the URL and the key, the first source that has it wins:

1. `--url` / `--api-key`;
2. `ECS_IMAGE_UPDATER_URL` / `ECS_IMAGE_UPDATER_API_KEY`;
3. `API_URL` / `API_KEY` (what `scripts/aws_connection.py` writes and the README's curl examples use);
4. `API_URL` / `API_KEY` lines of `.api.env` in the current directory (KEY=VALUE lines).

A key given for this client (`--api-key`, `ECS_IMAGE_UPDATER_API_KEY`) is never
sent to a URL from the generic sources (`API_URL`, `.api.env`), which may belong
to something else in the same CI job or come with a checkout: that is refused.

TLS is verified against the system's certificates, or a CA bundle (a file of PEM
certificates, for a TLS-intercepting proxy) named by the first of
`ECS_IMAGE_UPDATER_CA_BUNDLE`, `REQUESTS_CA_BUNDLE` and `SSL_CERT_FILE` that is set.

How requests sign in: `--auth`, else `ECS_IMAGE_UPDATER_AUTH`: `key` (the default:
the API key alone) or `iam` (the key, and a SigV4 signature with the AWS
credential chain, for a stage with AUTH_MODE=iam; ecs_image_updater_cli.signing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ecs_image_updater_cli.exits import RefusedError

ENV_FILE_NAME = ".api.env"
URL_VARIABLES = ("ECS_IMAGE_UPDATER_URL", "API_URL")
KEY_VARIABLES = ("ECS_IMAGE_UPDATER_API_KEY", "API_KEY")
CA_BUNDLE_VARIABLES = ("ECS_IMAGE_UPDATER_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
AUTH_VARIABLE = "ECS_IMAGE_UPDATER_AUTH"
AUTH_MODES = ("key", "iam")


@dataclass(frozen=True)
class Connection:
    """The service's base URL (no trailing slash) and the API key sent as `x-api-key`."""

    url: str
    api_key: str = field(repr=False)  # never in a repr, a log line or a traceback's locals
    ca_bundle: str | None = None  # PEM certificates TLS is verified against, instead of the system's
    auth: str = "key"  # or "iam": requests are signed with SigV4 too

    @property
    def sends_key_in_clear(self) -> bool:
        """True when the key would cross a network unencrypted (http:// to a host that is not loopback)."""
        parts = urlsplit(self.url)
        return parts.scheme == "http" and not _is_loopback(parts.hostname or "")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of `path` (blank lines, `#` comments and an `export ` prefix allowed); {} when missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as unreadable:
        raise RefusedError(f"cannot read {path}: {unreadable.strerror}") from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        name, _, value = stripped.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def candidate_keys(flag_key: str | None, environ: Mapping[str, str], directory: Path) -> list[str]:
    """Every API key any source offers, chosen or not: all are kept out of the output."""
    file_values = read_env_file(directory / ENV_FILE_NAME)
    found = [flag_key, *(environ.get(name) for name in KEY_VARIABLES), file_values.get("API_KEY")]
    return [key for key in found if key]


def resolve_connection(
    flag_url: str | None,
    flag_key: str | None,
    environ: Mapping[str, str],
    directory: Path,
    flag_auth: str | None = None,
) -> Connection:
    """The URL and the key, each from the first source that has it (see the module docstring)."""
    file_values = read_env_file(directory / ENV_FILE_NAME)
    url_source, url = _first(flag_url, *(environ.get(name) for name in URL_VARIABLES), file_values.get("API_URL"))
    key_source, key = _first(flag_key, *(environ.get(name) for name in KEY_VARIABLES), file_values.get("API_KEY"))
    if url is not None and key is not None and key_source < GENERIC_SOURCES <= url_source:
        raise RefusedError(
            f"the API key comes from {SOURCES[key_source][1]} but the URL from {SOURCES[url_source][0]}, which may "
            "belong to something else: give the URL as --url or ECS_IMAGE_UPDATER_URL too"
        )
    if url is None:
        raise RefusedError(
            "no service URL: give --url, or set ECS_IMAGE_UPDATER_URL (or API_URL), "
            f"or run where an {ENV_FILE_NAME} file has an API_URL line"
        )
    if key is None:
        raise RefusedError(
            "no API key: set ECS_IMAGE_UPDATER_API_KEY (or API_KEY), give --api-key, "
            f"or run where an {ENV_FILE_NAME} file has an API_KEY line"
        )
    return Connection(_checked_url(url), key, ca_bundle(environ), auth_mode(flag_auth, environ))


def auth_mode(flag_auth: str | None, environ: Mapping[str, str]) -> str:
    """`--auth`, else ECS_IMAGE_UPDATER_AUTH, else `key`."""
    mode = (flag_auth or environ.get(AUTH_VARIABLE) or "key").strip().lower()
    if mode not in AUTH_MODES:
        raise RefusedError(f"{AUTH_VARIABLE}={mode!r} is neither 'key' nor 'iam'")
    return mode


def ca_bundle(environ: Mapping[str, str]) -> str | None:
    """The CA bundle the environment names (the first of CA_BUNDLE_VARIABLES set), checked to be readable."""
    for name in CA_BUNDLE_VARIABLES:
        path = (environ.get(name) or "").strip()
        if not path:
            continue
        try:
            with open(path, "rb") as bundle:
                bundle.read(1)
        except OSError as unreadable:
            raise RefusedError(f"{name}={path}: the CA bundle cannot be read ({unreadable.strerror})") from None
        return path
    return None


# The sources in order, as (where the URL comes from, where the key comes from).
SOURCES = (
    ("--url", "--api-key"),
    ("ECS_IMAGE_UPDATER_URL", "ECS_IMAGE_UPDATER_API_KEY"),
    ("API_URL", "API_KEY"),
    (f"the API_URL line of {ENV_FILE_NAME}", f"the API_KEY line of {ENV_FILE_NAME}"),
)
GENERIC_SOURCES = 2  # from here on, names any tool may use: API_URL, API_KEY, .api.env


def _first(*values: str | None) -> tuple[int, str | None]:
    """The first value set (stripped) and the index of its source; (len(values), None) when none is."""
    return next(
        ((source, value.strip()) for source, value in enumerate(values) if value and value.strip()), (len(values), None)
    )


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedError(f"the service URL must start with https:// or http:// and name a host, not '{url}'")
    if parts.query or parts.fragment:
        raise RefusedError("the service URL must not carry a query or a fragment")
    if parts.username or parts.password:
        raise RefusedError("the service URL must not carry a user name or password; the API key goes in x-api-key")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
