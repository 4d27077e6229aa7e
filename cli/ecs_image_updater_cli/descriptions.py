"""Description files for `apply`: YAML or JSON, one service each (or a list), grouped by cluster.

```yaml
cluster: prod
service: web
containers:
  app: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1.4.2
```

The shape is checked here, so that a mistake is reported with its file name and
nothing is sent; the service checks the rest (image references, names, limits).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ecs_image_updater_cli.exits import RefusedError

DESCRIPTION_FIELDS = ("cluster", "service", "containers")
FILE_SUFFIXES = (".yaml", ".yml", ".json")
MAX_DESCRIPTIONS_PER_CLUSTER = 20


@dataclass(frozen=True)
class DescribedService:
    """One description and the file it came from."""

    source: str
    description: dict[str, Any]

    @property
    def cluster_name(self) -> str:
        """The cluster's name, also when the description names it by ARN."""
        return str(self.description["cluster"]).rsplit("/", 1)[-1]

    @property
    def service_name(self) -> str:
        """The service's name, also when the description names it by ARN."""
        return str(self.description["service"]).rsplit("/", 1)[-1]


def description_files(paths: Sequence[str]) -> list[Path]:
    """The files named, and every *.yaml, *.yml and *.json file (sorted) in each directory named."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FILE_SUFFIXES)
            if not found:
                raise RefusedError(f"{given}: the directory holds no *.yaml, *.yml or *.json file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise RefusedError(f"{given}: no such file or directory")
    return files


def load_descriptions(paths: Sequence[str]) -> list[DescribedService]:
    """Every description in the files and directories named, checked for shape."""
    described: list[DescribedService] = []
    for path in description_files(paths):
        entries = [entry for document in _documents(path) for entry in _as_list(document)]
        for number, entry in enumerate(entries, start=1):
            where = f"{path} (description {number})" if len(entries) > 1 else str(path)
            described.append(DescribedService(where, checked_description(entry, where)))
    if not described:
        raise RefusedError("the files hold no description")
    return described


def checked_description(entry: Any, where: str) -> dict[str, Any]:
    """`entry` when it is a description: cluster, service, and containers (name: image)."""
    if not isinstance(entry, Mapping):
        raise RefusedError(f"{where}: a description is a mapping of cluster, service and containers")
    unknown = [str(key) for key in entry if key not in DESCRIPTION_FIELDS]
    if unknown:
        raise RefusedError(
            f"{where}: unknown field(s) {', '.join(unknown)}; a description has cluster, service, containers"
        )
    for name in ("cluster", "service"):
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise RefusedError(f"{where}: '{name}' must be a name or ARN (a string)")
    containers = entry.get("containers")
    if not isinstance(containers, Mapping) or not containers:
        raise RefusedError(f"{where}: 'containers' must map each container's name to its image")
    for name, image in containers.items():
        if not isinstance(name, str) or not isinstance(image, str) or not image:
            raise RefusedError(
                f"{where}: container {name!r} must map to an image reference (a string; quote it in YAML)"
            )
    return {"cluster": entry["cluster"], "service": entry["service"], "containers": dict(containers)}


def by_cluster(described: Sequence[DescribedService]) -> dict[str, list[DescribedService]]:
    """The descriptions grouped by cluster name, in the order first seen; one service once per cluster."""
    groups: dict[str, list[DescribedService]] = {}
    for item in described:
        group = groups.setdefault(item.cluster_name, [])
        twin = next((other for other in group if other.service_name == item.service_name), None)
        if twin is not None:
            raise RefusedError(
                f"service '{item.service_name}' of cluster '{item.cluster_name}' is described twice: "
                f"in {twin.source} and in {item.source}"
            )
        group.append(item)
    for cluster, group in groups.items():
        if len(group) > MAX_DESCRIPTIONS_PER_CLUSTER:
            raise RefusedError(
                f"cluster '{cluster}' has {len(group)} descriptions; one apply takes at most "
                f"{MAX_DESCRIPTIONS_PER_CLUSTER} services of a cluster"
            )
    return groups


def _documents(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as unreadable:
        raise RefusedError(f"{path}: cannot be read ({unreadable})") from None
    try:
        if path.suffix.lower() == ".json":
            return [json.loads(text)]
        return [document for document in yaml.safe_load_all(text) if document is not None]
    except (json.JSONDecodeError, yaml.YAMLError) as malformed:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise RefusedError(f"{path}: not valid {kind}: {_first_line(malformed)}") from None


def _as_list(document: Any) -> list[Any]:
    return document if isinstance(document, list) else [document]


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]
