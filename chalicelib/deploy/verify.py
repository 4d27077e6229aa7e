"""Refuse a deployment that cannot work, before anything is written: the image, its platform, the secrets.

For every container a change moves to a new image:

- **the image exists**: ECR by `BatchGetImage` in the registry's own account
  and region, any other registry by the OCI distribution API
  (chalicelib.registry); its digest is what the answer and the record keep;
- **the platform fits**: an index must offer the revision's `runtimePlatform`
  (`linux/amd64` by default);

and for a revision that references secrets the running one does not (a
rollback to another revision), **each such secret exists** (Secrets Manager
`DescribeSecret`, SSM `GetParameters`, values never read).

A failed check refuses the request with 422, naming every failed check. A
registry (or secret store) that cannot answer refuses it with 502 under
`VERIFY_IMAGES=require` (the default), or lets it through with a warning in
the answer and the record under `warn`; `off` checks nothing.

Lookups start as soon as the images are known, so they run alongside the
reads the update makes anyway, and their answers are kept per container: an
image by digest for good (it never changes), by tag for a minute.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws import accounts, clients, parallel, secrets
from chalicelib.core.errors import AwsCallError, DeploymentWouldFailError, RegistryUnavailableError
from chalicelib.core.images import ImageReference, InvalidImageError, as_reference, parse_image
from chalicelib.core.locations import Location
from chalicelib.core.manifests import Manifest, Platform, named, task_platform
from chalicelib.registry import ImageMissing, RegistryUnreachable, ecr, oci

REQUIRE, WARN, OFF = "require", "warn", "off"
TAG_SECONDS = 60.0
MAX_KEPT = 2048

# Tests replace the clock to let a tag's answer age.
clock: Callable[[], float] = time.monotonic
_kept: dict[str, tuple[Manifest, float | None]] = {}
_kept_lock = threading.Lock()


@dataclass(frozen=True)
class Check:
    """One check and how it went, as a dry run reports it."""

    check: str  # image, platform, secret
    target: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"check": self.check, "target": self.target, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class ServiceChange:
    """What one service's change would run: the changed containers' images, on the revision's platform."""

    service: str
    images: Mapping[str, ImageReference]  # container -> its new image (changed containers only)
    platform: Platform
    credentials: Mapping[str, str] = field(default_factory=dict)  # container -> repositoryCredentials secret
    secrets: Sequence[tuple[str, str, str]] = ()  # (container, name, valueFrom) the running revision lacks

    @classmethod
    def of(
        cls,
        service: str,
        revision: Mapping[str, Any],
        images: Mapping[str, ImageReference | str],
        running: Mapping[str, Any] | None = None,
    ) -> ServiceChange:
        """The change to `revision` (as it would be registered) of these containers' images; with the `running`
        revision, the secrets `revision` references that `running` does not."""
        containers = {c.get("name"): c for c in revision.get("containerDefinitions") or []}
        credentials = {
            name: str(containers[name]["repositoryCredentials"]["credentialsParameter"])
            for name in images
            if (containers.get(name) or {}).get("repositoryCredentials", {}).get("credentialsParameter")
        }
        return cls(
            service,
            {name: _reference(image) for name, image in images.items()},
            task_platform(revision),
            credentials,
            tuple(_new_secrets(revision, running)) if running is not None else (),
        )


@dataclass
class Verified:
    """What the checks found for one service: the digest of each changed image, the checks, any warnings."""

    digests: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


Lookup = Callable[[], parallel.Outcome[Any, Manifest]]
# (AWS service, region or None for the target's) -> a client with the target account's credentials.
ClientFor = Callable[[str, str | None], Any]


def _home_client(service: str, region: str | None) -> Any:
    return clients.regional_client(service, region)


class Verifier:
    """The checks of one request, under one VERIFY_IMAGES mode, with the credentials of the target's account
    (`client_for`): an image in a registry is looked up, and a secret asked about, as that account would."""

    def __init__(self, mode: str = REQUIRE, client_for: ClientFor = _home_client) -> None:
        self.mode = mode
        self.client_for = client_for
        self._started: dict[str, Lookup] = {}

    @property
    def on(self) -> bool:
        """False under VERIFY_IMAGES=off."""
        return self.mode != OFF

    def prefetch(self, images: Iterable[ImageReference]) -> None:
        """Start looking these images up now, alongside the reads that follow (anonymously for other registries:
        a container's registry credentials are known once its revision is read)."""
        if not self.on:
            return
        for image in images:
            if str(image) not in self._started and _kept_answer(image) is None:
                self._started[str(image)] = parallel.start(lambda ref: _look_up(ref, None, self.client_for), image)

    def verify(self, changes: Sequence[ServiceChange], name_services: bool = False) -> list[Verified]:
        """Check every change; raise DeploymentWouldFailError naming each failed check (422), or, under
        `require`, RegistryUnavailableError when a registry or the secret store could not answer (502)."""
        if not self.on:
            return [Verified() for _ in changes]
        wanted = sorted(
            {(str(image), change.credentials.get(name)) for change in changes for name, image in change.images.items()},
            key=str,
        )
        answers = dict(zip(wanted, parallel.values(self._answer, wanted), strict=True))
        secret_answers = _secret_answers([item for change in changes for item in change.secrets], self.client_for)
        found = [self._judge(change, answers, secret_answers) for change in changes]
        failed, unverified = [], []
        for change, (verified, failures, unreachable) in zip(changes, found, strict=True):
            prefix = f"service '{change.service}': " if name_services or len(changes) > 1 else ""
            failed += [prefix + failure for failure in failures]
            unverified += [prefix + reason for reason in unreachable]
            verified.warnings += [f"not verified: {reason}" for reason in unreachable]
        if failed:
            also = f"; could not verify: {'; '.join(unverified)}" if unverified else ""
            raise DeploymentWouldFailError(
                f"the deployment cannot work, so nothing was changed: {'; '.join(failed)}{also}"
            )
        if unverified and self.mode == REQUIRE:
            raise RegistryUnavailableError(
                f"could not verify, so nothing was changed: {'; '.join(unverified)} "
                "(VERIFY_IMAGES=warn lets such a change through with a warning)"
            )
        return [verified for verified, _failures, _unreachable in found]

    def check_pushed(self, image: ImageReference) -> list[str]:
        """A push names what was pushed: it must be in its registry before anything is queued (so a faked push
        moves nothing). Returns the warnings (VERIFY_IMAGES=warn and a registry that could not answer)."""
        if not self.on:
            return []
        answer = self._answer((str(image), None))
        if isinstance(answer, ImageMissing):
            raise DeploymentWouldFailError(f"the pushed image {image} does not exist ({answer}); nothing was queued")
        if isinstance(answer, Exception):
            if self.mode == REQUIRE:
                raise RegistryUnavailableError(
                    f"could not verify the pushed image {image}, so nothing was queued: {answer} "
                    "(VERIFY_IMAGES=warn lets such a push through with a warning)"
                )
            return [f"not verified: the pushed image {image}: {answer}"]
        return []

    def _answer(self, wanted: tuple[str, str | None]) -> Manifest | Exception:
        """The manifest of an image, or the ImageMissing / RegistryUnreachable that says why there is none."""
        text, credentials = wanted
        image = parse_image(text)
        started = self._started.get(text)
        outcome = started() if started is not None else None
        if outcome is not None and outcome.error is None:
            return outcome.value  # type: ignore[return-value]
        if outcome is not None and not (credentials and isinstance(outcome.error, RegistryUnreachable)):
            return outcome.error  # type: ignore[return-value]
        try:
            return _look_up(image, credentials, self.client_for)
        except (ImageMissing, RegistryUnreachable) as finding:
            return finding

    def _judge(
        self,
        change: ServiceChange,
        answers: Mapping[tuple[str, str | None], Manifest | Exception],
        secret_answers: Mapping[str, bool | str],
    ) -> tuple[Verified, list[str], list[str]]:
        verified, failures, unreachable = Verified(), [], []
        for name, image in change.images.items():
            target = f"container '{name}'"
            answer = answers[(str(image), change.credentials.get(name))]
            if isinstance(answer, ImageMissing):
                failures.append(f"{target}: image {image} does not exist ({answer})")
                verified.checks.append(Check("image", f"{name}: {image}", False, str(answer)))
            elif isinstance(answer, Exception):
                unreachable.append(f"{target}: image {image}: {answer}")
                verified.checks.append(Check("image", f"{name}: {image}", False, f"not verified: {answer}"))
            else:
                verified.digests[name] = answer.digest
                verified.checks.append(Check("image", f"{name}: {image}", True, answer.digest))
                if answer.offers(change.platform):
                    detail = "a single-platform image" if answer.platforms is None else f"offers {change.platform}"
                    verified.checks.append(Check("platform", f"{name}: {image}", True, detail))
                else:
                    offered = named(answer.platforms or ())
                    failures.append(f"{target}: image {image} offers {offered}, not {change.platform}")
                    verified.checks.append(Check("platform", f"{name}: {image}", False, f"offers {offered} only"))
        for container, secret, value_from in change.secrets:
            target = f"{container}: {secret}"
            answer = secret_answers[value_from]
            if answer is True:
                verified.checks.append(Check("secret", target, True, value_from))
            elif answer is False:
                failures.append(f"container '{container}': secret '{secret}' ({value_from}) does not exist")
                verified.checks.append(Check("secret", target, False, f"{value_from} does not exist"))
            else:
                unreachable.append(f"container '{container}': secret '{secret}' ({value_from}): {answer}")
                verified.checks.append(Check("secret", target, False, f"not verified: {answer}"))
        return verified, failures, unreachable


def forget() -> None:
    """Forget every answer kept (tests start each world afresh)."""
    with _kept_lock:
        _kept.clear()


def _look_up(image: ImageReference, credentials_arn: str | None, client_for: ClientFor) -> Manifest:
    kept = _kept_answer(image)
    if kept is not None:
        return kept
    repository = ecr.repository_of(image)
    if repository is not None:
        # A registry of an account the service reaches is asked with that account's credentials (a push to a
        # target's ECR); any other (a shared registry account) as the target would pull from it.
        in_registry_account = accounts.reaches(Location(repository.account, repository.region))
        manifest = ecr.lookup(
            repository,
            image,
            lambda region: (
                accounts.client_in("ecr", Location(repository.account, region))
                if in_registry_account
                else client_for("ecr", region)
            ),
        )
    else:
        credentials = _credentials(credentials_arn, image, client_for) if credentials_arn else None
        manifest = oci.lookup(image, credentials)
    with _kept_lock:
        if len(_kept) >= MAX_KEPT:
            _kept.clear()
        # What a digest names never changes; a tag may move, so its answer is kept a minute at most.
        _kept[str(image)] = (manifest, None if image.digest else clock() + TAG_SECONDS)
        if manifest.digest:
            _kept[f"{image.repository}@{manifest.digest}"] = (manifest, None)
    return manifest


def _kept_answer(image: ImageReference) -> Manifest | None:
    with _kept_lock:
        kept = _kept.get(str(image))
    if kept is None:
        return None
    manifest, expires = kept
    return manifest if expires is None or clock() < expires else None


def _credentials(arn: str, image: ImageReference, client_for: ClientFor) -> oci.Credentials:
    """The registry credentials a container's repositoryCredentials secret holds ({"username", "password"})."""
    host, _name = oci.location(image)
    try:
        stored = json.loads(secrets.secret_string(arn, client_for("secretsmanager", secrets.region_of(arn))))
    except AwsCallError as failure:
        raise RegistryUnreachable(host, f"its credentials ({arn}) could not be read: {failure.message}") from None
    except ValueError:
        raise RegistryUnreachable(host, f"its credentials ({arn}) are not JSON with username and password") from None
    if not isinstance(stored, Mapping) or not stored.get("username") or not stored.get("password"):
        raise RegistryUnreachable(host, f"its credentials ({arn}) are not JSON with username and password")
    return oci.Credentials(str(stored["username"]), str(stored["password"]))


def _secret_answers(secrets_wanted: Sequence[tuple[str, str, str]], client_for: ClientFor) -> dict[str, bool | str]:
    """For each valueFrom: True (it exists), False (it does not), or why it could not be said."""
    value_froms = sorted({value_from for _container, _name, value_from in secrets_wanted})
    answers: dict[str, bool | str] = {}
    in_secrets_manager = [v for v in value_froms if v.startswith("arn:") and ":secretsmanager:" in v]

    def exists(arn: str) -> bool:
        return secrets.secret_exists(arn, client_for("secretsmanager", secrets.region_of(arn)))

    for outcome in parallel.each(exists, in_secrets_manager):
        answers[outcome.item] = outcome.value if outcome.error is None else _reason(outcome.error)
    parameters = [v for v in value_froms if v not in answers]
    by_region: dict[str | None, list[str]] = {}
    for name in parameters:
        by_region.setdefault(secrets.region_of(name), []).append(name)
    for outcome in parallel.each(
        lambda region: secrets.missing_parameters(by_region[region], region, client_for("ssm", region)), list(by_region)
    ):
        for name in by_region[outcome.item]:
            if outcome.error is not None:
                answers[name] = _reason(outcome.error)
            else:
                answers[name] = name not in (outcome.value or set())
    return answers


def _new_secrets(revision: Mapping[str, Any], running: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(container, name, valueFrom) of the secrets `revision` references that `running` does not."""
    known = {
        (c.get("name"), s.get("name"), s.get("valueFrom"))
        for c in running.get("containerDefinitions") or []
        for s in c.get("secrets") or []
    }
    return [
        (str(c.get("name")), str(s.get("name")), str(s.get("valueFrom")))
        for c in revision.get("containerDefinitions") or []
        for s in c.get("secrets") or []
        if (c.get("name"), s.get("name"), s.get("valueFrom")) not in known and s.get("valueFrom")
    ]


def _reference(image: ImageReference | str) -> ImageReference:
    try:
        return as_reference(image)
    except InvalidImageError as error:
        raise DeploymentWouldFailError(f"image '{image}' cannot be verified: {error}") from error


def _reason(failure: Exception) -> str:
    return failure.message if isinstance(failure, AwsCallError) else str(failure)
