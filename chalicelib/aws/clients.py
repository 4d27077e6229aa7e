"""AWS clients: made lazily, reused by the warm Lambda, each bounded in time (chalicelib.aws.budget).

`call` makes one call and turns its failure into an UpdateError that names the
step and says whether it is worth retrying (throttled, timed out) or not.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ParamValidationError,
    ReadTimeoutError,
)

from chalicelib.aws import budget, fidelity
from chalicelib.core.errors import AwsCallError, AwsThrottledError, AwsTimeoutError, UpdateError

# botocore's `total_max_attempts` counts the first try too (`max_attempts` counts only retries).
TOTAL_MAX_ATTEMPTS = 3

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
    }
)

# ECS's model as data (scripts/ship_ecs_model.py): its newer operations, whatever botocore the runtime has.
MODELS_DIR = Path(__file__).resolve().parent / "models"

_session: boto3.session.Session | None = None
_clients: dict[str, Any] = {}
# Sessions are not thread-safe: clients are made one at a time, then shared.
_clients_lock = threading.RLock()
_session_lock = threading.Lock()

ErrorFactory = Callable[[str], UpdateError]


def client_config(service: str = "") -> Config:
    """Timeouts and retries of this service's clients (the state table's attempts are shorter)."""
    state = service == "dynamodb"
    return Config(
        connect_timeout=budget.STATE_CONNECT_TIMEOUT_SECONDS if state else budget.CONNECT_TIMEOUT_SECONDS,
        read_timeout=budget.STATE_READ_TIMEOUT_SECONDS if state else budget.READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
    )


def attempt_seconds(service: str) -> float:
    """The longest one attempt of a call to `service` can take."""
    return budget.STATE_ATTEMPT_SECONDS if service == "dynamodb" else budget.ATTEMPT_SECONDS


def session() -> boto3.session.Session:
    """The process-wide boto3 session; it keeps parsed service models, so clients are cheap."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
            add_shipped_models(_session)
        return _session


def add_shipped_models(boto_session: boto3.session.Session) -> bool:
    """Put the shipped service models first on the session's search path when its botocore is older than the
    one they were taken from (the Lambda runtime's lags ECS); True when they were added.

    Called before the session loads any model: the loader caches what it loaded.
    """
    shipped = json.loads((MODELS_DIR / "source.json").read_text())["botocore"]
    if _version(botocore.__version__) >= _version(shipped):
        return False
    loader = boto_session._session.get_component("data_loader")  # boto3 exposes no other way
    if str(MODELS_DIR) not in loader.search_paths:
        loader.search_paths.insert(0, str(MODELS_DIR))
    return True


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def new_client(service: str, region: str | None = None, credentials: Mapping[str, str] | None = None) -> Any:
    """A new client with this service's timeouts, retries and time budget (in `region`, with `credentials`:
    AccessKeyId, SecretAccessKey, SessionToken, when given; the function's own otherwise)."""
    keys = (
        {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
        if credentials
        else {}
    )
    with _clients_lock:
        client = session().client(service, region_name=region, config=client_config(service), **keys)
    budget.install(client, attempt_seconds(service))
    if service == "ecs":
        fidelity.install(client)  # task definitions are copied from ECS's own JSON, every field kept
    return client


def ecs_client() -> Any:
    """The process-wide ECS client, created on first use (never at import time)."""
    return cached_client("ecs")


def dynamodb_client() -> Any:
    """The process-wide DynamoDB client (the state table), created on first use."""
    return cached_client("dynamodb")


def sns_client() -> Any:
    """The process-wide SNS client (notifications), created on first use."""
    return cached_client("sns")


def codepipeline_client() -> Any:
    """The process-wide CodePipeline client (job results of the pipeline action)."""
    return cached_client("codepipeline")


def artifact_client(credentials: Mapping[str, str]) -> Any:
    """An S3 client with a CodePipeline job's own artifact credentials (made per job: they are the job's)."""
    with _clients_lock:
        client = session().client(
            "s3",
            aws_access_key_id=credentials.get("accessKeyId"),
            aws_secret_access_key=credentials.get("secretAccessKey"),
            aws_session_token=credentials.get("sessionToken"),
            config=client_config(),
        )
    budget.install(client)
    return client


def sqs_client() -> Any:
    """The process-wide SQS client (the push work queue), created on first use."""
    return cached_client("sqs")


def secretsmanager_client() -> Any:
    """The process-wide Secrets Manager client (the webhooks' signing secrets)."""
    return cached_client("secretsmanager")


def tagging_client() -> Any:
    """The process-wide Resource Groups Tagging API client (services that opted in to pushes)."""
    return cached_client("resourcegroupstaggingapi")


def cached_client(service: str) -> Any:
    """The process-wide client of `service`, created on first use (clients are thread-safe)."""
    with _clients_lock:
        if service not in _clients:
            _clients[service] = new_client(service)
        return _clients[service]


def regional_client(service: str, region: str | None) -> Any:
    """The process-wide client of `service` in `region` (the home region's own client when it is that one):
    an ECR registry, a secret or a parameter lives in the region its name says."""
    home = cached_client(service)
    if not region or region == home.meta.region_name:
        return home
    key = f"{service}@{region}"
    with _clients_lock:
        if key not in _clients:
            _clients[key] = new_client(service, region)
        return _clients[key]


def reset_clients() -> None:
    """Forget the cached clients (tests start each AWS world with fresh ones)."""
    with _clients_lock:
        _clients.clear()


def call(
    method: Callable[..., dict[str, Any]], step: str, known: Mapping[str, ErrorFactory], **kwargs: Any
) -> dict[str, Any]:
    """Make one AWS call and translate its failure into an UpdateError naming `step`.

    `known` maps AWS error codes to the domain error to raise instead.
    """
    try:
        return method(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in known:
            raise known[code](message) from error
        if code in THROTTLING_CODES:
            raise AwsThrottledError(
                step, f"{step} was throttled by AWS ({code}) until its retries ran out; try again in a few seconds"
            ) from error
        raise AwsCallError(
            step, f"{step} failed: {code}: {message}".rstrip(": "), outcome_unknown=status >= 500
        ) from error
    except budget.TimeBudgetExceeded as error:
        raise AwsTimeoutError(step, f"{step} did not answer in time: {error}") from error
    except (ReadTimeoutError, ConnectTimeoutError) as error:
        raise AwsTimeoutError(
            step, f"{step} did not answer in time: {error}", outcome_unknown=budget.outcome_unknown(None, error)
        ) from error
    except ParamValidationError as error:
        raise AwsCallError(step, f"{step} was not sent: the AWS SDK refused its parameters: {error}") from error
    except BotoCoreError as error:
        raise AwsCallError(
            step, f"{step} failed: {error}", outcome_unknown=budget.outcome_unknown(None, error)
        ) from error
