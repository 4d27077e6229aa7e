"""Write the ECS service model the functions load when the Lambda runtime's botocore is older.

ECS's service deployment operations (ListServiceDeployments,
DescribeServiceDeployments, DescribeServiceRevisions, StopServiceDeployment,
ContinueServiceDeployment) are newer than the botocore of the Lambda runtime.
Instead of bundling an SDK, the package carries ECS's model as data:
chalicelib/aws/models/ecs/<api version>/service-2.json.gz, taken from the
botocore installed here with its documentation strings left out (the model is
a tenth of its size without them), plus the botocore version it came from.
chalicelib.aws.clients puts that directory first on botocore's search path
only when the installed botocore is older than that version.

Run `.venv/bin/python scripts/ship_ecs_model.py` after upgrading botocore in
requirements-dev.txt; tests/aws/test_models.py checks the shipped model has
every operation the service calls.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import botocore
import botocore.loaders

PROJECT_DIR = Path(__file__).resolve().parents[1]
MODELS_DIR = PROJECT_DIR / "chalicelib" / "aws" / "models"


def without_documentation(node: Any) -> Any:
    """The model with every `documentation` string (and the docs-only `documentationUrl`) left out."""
    if isinstance(node, dict):
        return {k: without_documentation(v) for k, v in node.items() if k not in ("documentation", "documentationUrl")}
    if isinstance(node, list):
        return [without_documentation(v) for v in node]
    return node


def main() -> None:
    loader = botocore.loaders.Loader()
    version = loader.determine_latest_version("ecs", "service-2")
    model = without_documentation(loader.load_service_model("ecs", "service-2", version))
    target = MODELS_DIR / "ecs" / version / "service-2.json.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(model, sort_keys=True, separators=(",", ":")).encode()
    # mtime 0: the same model gives the same bytes, so a deploy uploads nothing new.
    target.write_bytes(gzip.compress(body, compresslevel=9, mtime=0))
    (MODELS_DIR / "source.json").write_text(json.dumps({"botocore": botocore.__version__}, indent=2) + "\n")
    print(f"{target.relative_to(PROJECT_DIR)}: {target.stat().st_size} bytes, from botocore {botocore.__version__}")


if __name__ == "__main__":
    main()
