"""Running Terraform on a synthesised stack, with the repo's CLI configuration where its mirror exists."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from modules.cloud import stack_dir

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path("/opt/tf-plugins/registry.terraform.io/hashicorp/aws")


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", TF_IN_AUTOMATION="1",
               CHECKPOINT_DISABLE="1")
    configured = os.environ.get("TF_CLI_CONFIG_FILE")
    if MIRROR.is_dir() and not (configured and Path(configured).is_file()):
        out["TF_CLI_CONFIG_FILE"] = str(ROOT / "terraformrc")
    out.update(extra or {})
    return out


def terraform(name: str, *args: str, extra_env: dict[str, str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["terraform", *args], cwd=stack_dir(name), env=env(extra_env), capture_output=True,
                          text=True, timeout=timeout)


def synth(profile: str) -> subprocess.CompletedProcess:
    """``python main.py`` for one profile (``aws``, ``localstack``)."""
    import sys  # noqa: PLC0415

    return subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env({"ODIN_PROFILES": profile}),
                          capture_output=True, text=True, timeout=900)


def has_aws_credentials() -> bool:
    keys = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    return any(os.environ.get(k) for k in keys) or (Path.home() / ".aws" / "credentials").exists()
