"""Every account and region from one service: where a target is, whether it may be reached, and how.

- **Home** is the account and region the service runs in: the account from the
  function's own ARN (Lambda hands it over with every invocation), else, on the
  local stage, from `sts:GetCallerIdentity` once per process; the region from
  `AWS_REGION`.
- **A target elsewhere** is named by its cluster's (or service's) ARN. It is
  allowed only when its account is home or in `TARGET_ACCOUNTS`, and its region
  home or in `TARGET_REGIONS`; anything else is refused (403) before any call
  to it.
- **Reaching it**: in another account, by assuming the role
  `arn:aws:iam::<account>:role/<TARGET_ROLE_NAME>` with the external id
  `TARGET_EXTERNAL_ID`. Credentials are kept per account until five minutes
  before they expire; the AssumeRole call keeps the request's time budget like
  any other. At home (in any region), the function's own credentials.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.aws import budget, clients
from chalicelib.core.config import Settings, load_settings
from chalicelib.core.errors import InvalidRequestError, NotAllowedError
from chalicelib.core.locations import Location, location_of, name_of

SESSION_NAME = "ecs-image-updater"
SESSION_SECONDS = 3600
RENEW_BEFORE = timedelta(minutes=5)

_lock = threading.RLock()
_home: dict[str, Location] = {}
_credentials: dict[str, tuple[dict[str, str], datetime]] = {}
# One AssumeRole at a time per account: parallel work on a cold container waits for the first one's answer.
_assuming: dict[str, threading.Lock] = {}
_clients: dict[tuple[str, str, str, datetime], Any] = {}


@dataclass(frozen=True)
class Reach:
    """Where a request's services are, and the clients that reach them."""

    location: Location
    home: bool

    @property
    def where(self) -> Location | None:
        """None at home; the location elsewhere (what keys its locks and records apart)."""
        return None if self.home else self.location

    def client(self, service: str, region: str | None = None) -> Any:
        """A client of `service` in this account (in `region`, or the target's), with its credentials."""
        return client_in(service, Location(self.location.account, region or self.location.region))

    def cluster(self, cluster: str) -> str:
        """How an answer names the cluster: its name at home, its ARN elsewhere (so that it can be used again)."""
        return name_of(cluster) if self.home else self.location.cluster_arn(cluster)


def learn_home(lambda_context: Any) -> None:
    """Note the home account from the function's ARN (`arn:aws:lambda:<region>:<account>:function:…`), once."""
    arn = str(getattr(lambda_context, "invoked_function_arn", "") or "")
    parts = arn.split(":")
    if len(parts) > 4 and parts[4].isdigit():
        with _lock:
            _home.setdefault("home", Location(parts[4], parts[3], parts[1] or "aws"))


def home() -> Location:
    """The account and region the service runs in."""
    with _lock:
        if "home" in _home:
            return _home["home"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or clients.session().region_name
    sts = clients.cached_client("sts")  # made before the call's budget starts: a cold client takes a while
    with budget.within(budget.ONE_CALL_SECONDS):
        answer = clients.call(sts.get_caller_identity, "GetCallerIdentity", {})
    found = Location(str(answer["Account"]), str(region), str(answer.get("Arn", "arn:aws:")).split(":")[1] or "aws")
    with _lock:
        return _home.setdefault("home", found)


def reach(cluster: str, *services: str, settings: Settings | None = None) -> Reach:
    """Where the cluster (or its services) named by a request are, checked against TARGET_ACCOUNTS and
    TARGET_REGIONS; a request's ARNs must all name one account and region."""
    named_all = {found for found in (location_of(i) for i in (cluster, *services)) if found is not None}
    if len(named_all) > 1:
        places = ", ".join(sorted(str(place) for place in named_all))
        raise InvalidRequestError(f"one request names one cluster, in one account and region, not several ({places})")
    named = next(iter(named_all), None)
    at_home = home()
    if named is None:
        return Reach(at_home, True)
    check(named, at_home, settings or load_settings())
    if named.account == at_home.account and named.region == at_home.region:
        return Reach(at_home, True)
    return Reach(named, False)


def everywhere(settings: Settings | None = None) -> list[Reach]:
    """Every place the service may reach: each account (home first, then TARGET_ACCOUNTS) in each region (home
    first, then TARGET_REGIONS)."""
    settings = settings or load_settings()
    at_home = home()
    accounts = [at_home.account, *(a for a in settings.target_accounts or () if a != at_home.account)]
    regions = [at_home.region, *(r for r in settings.target_regions or () if r != at_home.region)]
    return [
        Reach(Location(account, region, at_home.partition), account == at_home.account and region == at_home.region)
        for account in accounts
        for region in regions
    ]


def where_of(*identifiers: str) -> Location | None:
    """The location the first ARN among `identifiers` names, when it is not home; None at home (or for names)."""
    for identifier in identifiers:
        named = location_of(identifier)
        if named is not None:
            at_home = home()
            return None if (named.account, named.region) == (at_home.account, at_home.region) else named
    return None


def reaches(location: Location, settings: Settings | None = None) -> bool:
    """True for a place the service may reach: home or listed, its account and its region."""
    try:
        check(location, home(), settings or load_settings())
    except NotAllowedError:
        return False
    return True


def check(location: Location, at_home: Location, settings: Settings) -> None:
    """Refuse (403) an account or a region that is neither home nor listed."""
    if location.account != at_home.account and location.account not in (settings.target_accounts or ()):
        raise NotAllowedError(
            f"account {location.account} is not a target of this service: it is neither the home account "
            f"({at_home.account}) nor listed in TARGET_ACCOUNTS"
        )
    if location.region != at_home.region and location.region not in (settings.target_regions or ()):
        raise NotAllowedError(
            f"region {location.region} is not a target of this service: it is neither the home region "
            f"({at_home.region}) nor listed in TARGET_REGIONS"
        )


def client_in(service: str, location: Location) -> Any:
    """A client of `service` in `location`: the function's own credentials at home, the target role's elsewhere."""
    if location.account == home().account:
        return clients.regional_client(service, location.region)
    credentials, expires = _assumed(location.account)
    key = (service, location.account, location.region, expires)
    with _lock:
        if key not in _clients:
            for stale in [k for k in _clients if k[:3] == key[:3]]:
                del _clients[stale]
            _clients[key] = clients.new_client(service, location.region, credentials)
        return _clients[key]


def role_arn(account: str, settings: Settings | None = None) -> str:
    """The role the service assumes in `account`."""
    partition = home().partition
    return f"arn:{partition}:iam::{account}:role/{(settings or load_settings()).target_role_name}"


def forget() -> None:
    """Forget home, credentials and clients (tests start each world afresh)."""
    with _lock:
        _home.clear()
        _credentials.clear()
        _clients.clear()


def _assumed(account: str) -> tuple[Mapping[str, str], datetime]:
    """The target role's credentials in `account`, kept until five minutes before they expire."""
    with _lock:
        assuming = _assuming.setdefault(account, threading.Lock())
    with assuming:
        now = datetime.now(UTC)
        with _lock:
            kept = _credentials.get(account)
        if kept is not None and kept[1] - RENEW_BEFORE > now:
            return kept
        return _assume(account, now)


def _assume(account: str, now: datetime) -> tuple[Mapping[str, str], datetime]:
    settings = load_settings()
    extra = {"ExternalId": settings.target_external_id} if settings.target_external_id else {}
    answer = clients.call(
        clients.cached_client("sts").assume_role,
        "AssumeRole",
        {},
        RoleArn=role_arn(account, settings),
        RoleSessionName=SESSION_NAME,
        DurationSeconds=SESSION_SECONDS,
        **extra,
    )
    credentials = answer["Credentials"]
    expires = credentials["Expiration"]
    if isinstance(expires, datetime) and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    found = (
        {key: str(credentials[key]) for key in ("AccessKeyId", "SecretAccessKey", "SessionToken")},
        expires if isinstance(expires, datetime) else now + timedelta(seconds=SESSION_SECONDS),
    )
    with _lock:
        _credentials[account] = found
    return found
