"""The `ecs-image-updater` command: arguments, configuration, one subcommand, and its exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ecs_image_updater_cli import __version__, apply, approvals, deploy, export, history, rollback, status, stop
from ecs_image_updater_cli.api import ApiClient
from ecs_image_updater_cli.config import candidate_keys, resolve_connection
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.durations import duration_argument, parse_duration
from ecs_image_updater_cli.exits import EXIT_CODES_HELP, CliError, ExitCode
from ecs_image_updater_cli.wait import DEFAULT_TIMEOUT

COMMANDS = (deploy, apply, export, status, history, rollback, stop, approvals)
INTERRUPTED = 130

CONFIGURATION_HELP = """configuration (the first that is set wins, for the URL and the key each):
  --url / --api-key
  ECS_IMAGE_UPDATER_URL / ECS_IMAGE_UPDATER_API_KEY
  API_URL / API_KEY
  API_URL= / API_KEY= lines of .api.env in the current directory
The key is sent in the x-api-key header only and never printed.
--auth iam (or ECS_IMAGE_UPDATER_AUTH=iam): sign requests with SigV4 too, for a stage with
IAM sign-in, with the AWS credential chain (environment, profile, SSO, web identity); needs
pip install 'ecs-image-updater[iam]'. The region comes from the URL, else ECS_IMAGE_UPDATER_REGION
or AWS_REGION.
TLS: the system's certificates, or the CA bundle in ECS_IMAGE_UPDATER_CA_BUNDLE,
REQUESTS_CA_BUNDLE or SSL_CERT_FILE (the first set), e.g. for a TLS-intercepting proxy."""


class _UsageError(Exception):
    """The command line is wrong (argparse's complaint, already formatted)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is exit code 3 (refused), since 2 means 'timed out' here."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of exiting, so that the message goes out through the redacting console."""
        raise _UsageError(f"{self.format_usage()}{self.prog}: error: {message}")


def common_options(defaults: bool) -> argparse.ArgumentParser:
    """--url, --api-key and --json; on each subcommand too, so they may come before or after it."""
    parser = argparse.ArgumentParser(add_help=False)
    suppress: Any = argparse.SUPPRESS
    parser.add_argument("--url", default=None if defaults else suppress, help="the service's base URL")
    parser.add_argument(
        "--api-key",
        default=None if defaults else suppress,
        help="the API key (prefer ECS_IMAGE_UPDATER_API_KEY: a command line is visible to other processes)",
    )
    parser.add_argument(
        "--auth",
        choices=("key", "iam"),
        default=None if defaults else suppress,
        help="key: the API key alone (default); iam: SigV4-signed too, with your AWS credentials",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else suppress,
        help="print the service's JSON answers, one per line, instead of tables",
    )
    parser.add_argument(
        "--timeout",
        type=duration_argument,
        default=parse_duration(DEFAULT_TIMEOUT) if defaults else suppress,
        metavar="DURATION",
        help=(
            "how long to keep trying while the service is busy or throttling, and how long --wait waits, "
            f"like 90s, 15m, 1h (default {DEFAULT_TIMEOUT})"
        ),
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(
        prog="ecs-image-updater",
        description="Roll ECS services onto new images through the ECS image updater service, and follow the outcome.",
        epilog=f"{CONFIGURATION_HELP}\n\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    shared = common_options(defaults=False)
    for command in COMMANDS:
        command.add_parser(commands, shared)
    for subparser in commands.choices.values():
        subparser.epilog = f"{subparser.epilog or ''}\n\n{EXIT_CODES_HELP}".strip()
        subparser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def keys_on_command_line(argv: Sequence[str]) -> list[str]:
    """Values given to anything that looks like the key's flag, to keep out of any message.

    `--api-key KEY` and `--api-key=KEY`, and as well a prefix argparse would take
    (`--api KEY`) or a misspelling it would refuse and print (`--api_key KEY`).
    """
    found = []
    for position, argument in enumerate(argv):
        flag, equals, value = argument.partition("=")
        if not flag.startswith("--api"):
            continue
        if equals:
            found.append(value)
        elif position + 1 < len(argv):
            found.append(argv[position + 1])
    return found


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: dict[str, str] | None = None,
    directory: Path | None = None,
) -> int:
    """Run one command; the return value is the process's exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    environment = dict(os.environ if environ is None else environ)
    here = Path.cwd() if directory is None else directory
    console = Console(stdout or sys.stdout, stderr or sys.stderr, keys_on_command_line(arguments))
    try:
        for key in candidate_keys(None, environment, here):
            console.hide(key)
        args = build_parser().parse_args(arguments)
        console.json_output = bool(args.json)
        connection = resolve_connection(args.url, args.api_key, environment, here, args.auth)
        console.hide(connection.api_key)
        if connection.sends_key_in_clear:
            console.err(f"warning: {connection.url} is not HTTPS: the API key crosses the network unencrypted")
        client = ApiClient(connection, retry_seconds=args.timeout, environ=environment)
        return int(args.run(args, client, console))
    except _UsageError as usage:
        console.err(str(usage).rstrip("\n"))
        return ExitCode.REFUSED
    except CliError as failure:
        if console.json_output and failure.body is not None:
            console.json(failure.body)
        console.err(f"error: {failure.message}")
        return failure.exit_code
    except KeyboardInterrupt:
        console.err("interrupted")
        return INTERRUPTED
    except Exception as unexpected:  # a bug in the client: say what, never with a trace that could hold the key
        console.err(f"error: unexpected {type(unexpected).__name__}: {unexpected}")
        return ExitCode.UNAVAILABLE
