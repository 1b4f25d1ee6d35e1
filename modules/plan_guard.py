"""Refuse a synthesised stack that could misuse the credentials Terraform plans or applies it with.

CI synthesises a pull request's stack in a job with no cloud credentials (the pull request's Python runs
there), then plans that JSON in a second job that holds the plan role. Terraform JSON can still run code
or leak a session token at plan time: another provider (``external`` runs programs; ``http`` calls out),
a provider or backend pointed at another endpoint (SigV4 requests carry the session token in a header),
a module from elsewhere. The plan job runs this check from main's checkout (not the pull request's) before
``terraform init``, and copies only the checked file into an empty folder to plan (an artifact could also
carry other ``*.tf`` files or a ``.terraform`` folder); it needs only the standard library.

    python -m modules.plan_guard cdktf.out/stacks/odin-aws/cdk.tf.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BLOCKS = {"//", "terraform", "provider", "resource", "data", "output", "variable", "check", "locals"}
PROVIDER_KEYS = {"region", "default_tags"}
BACKEND_KEYS = {"bucket", "key", "region", "encrypt", "dynamodb_table"}
DATA_SOURCES = {"aws_caller_identity"}
RESOURCE_KEYS_REFUSED = {"provisioner", "connection"}


def problems(stack: dict) -> list[str]:
    found = [f"top-level block {b!r}" for b in set(stack) - BLOCKS]
    providers = stack.get("provider", {})
    found += [f"provider {p!r}" for p in set(providers) - {"aws"}]
    for config in providers.get("aws", []):
        found += [f"aws provider setting {k!r}" for k in set(config) - PROVIDER_KEYS]
    terraform = stack.get("terraform", {})
    found += [f"required provider {p!r}" for p in set(terraform.get("required_providers", {})) - {"aws"}]
    source = terraform.get("required_providers", {}).get("aws", {}).get("source", "hashicorp/aws")
    if source not in ("aws", "hashicorp/aws", "registry.terraform.io/hashicorp/aws"):
        found.append(f"aws provider source {source!r}")
    for kind, config in terraform.get("backend", {}).items():
        if kind != "s3":
            found.append(f"backend {kind!r}")
        found += [f"backend setting {k!r}" for k in set(config) - BACKEND_KEYS]
    found += [f"data source {d!r}" for d in set(stack.get("data", {})) - DATA_SOURCES]
    for kind, resources in stack.get("resource", {}).items():
        if not kind.startswith("aws_"):
            found.append(f"resource type {kind!r}")
        for name, body in resources.items():
            found += [f"{kind}.{name}: {k}" for k in set(body) & RESOURCE_KEYS_REFUSED]
    return sorted(found)


def main(argv: list[str]) -> int:
    (path,) = argv
    found = problems(json.loads(Path(path).read_text()))
    for p in found:
        print(f"plan_guard: refused: {p}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
