"""One Lambda per light stage, each a few lines in ``functions/<stage>/handler.py`` over ``wildlife``.

How the code ships is the profile's ``functions.package``:
- ``image`` (AWS): one container image for every function (``images/functions/Dockerfile``: the project and
  its dependencies, pyarrow, numpy, OpenCV, hdbscan; about 600 MB, far over the 250 MB a zip and its layers may
  unpack to), pushed to the ECR repository made here; each function names its handler in ``image_config``.
- ``zip``: ``wildlife/`` and ``functions/`` as a zip built here, in Python and reproducibly (sorted entries,
  fixed timestamps and modes), so the same source gives the same hash and Terraform changes a function only
  when its code changed. The dependencies must then come from ``layer_arns``.
Each function has its own role (``modules.access.STAGE_IO``): read what its stage reads, write only the keys
its stage writes (no function may write ``input/``), write its own log group (encrypted with the stack's key)
and its X-Ray traces.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

from cdktn import AssetType, TerraformAsset
from cdktn_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.lambda_function import LambdaFunction, LambdaFunctionEnvironment
from constructs import Construct

from modules.access import STAGE_IO, document, s3_statements, xray_statement
from modules.checkov import accept
from modules.compute import assume, repository
from wildlife.graph import LAMBDAS

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = {task.key: task.folder for task in LAMBDAS}  # state name -> folder under functions/ (wildlife.graph)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def build_zip(out: Path) -> str:
    """wildlife/ and functions/ as a deterministic zip; returns its SHA-256."""
    files = sorted(p for folder in ("wildlife", "functions") for p in (ROOT / folder).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")  # two synths at once never see half a zip
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(ROOT).as_posix(), ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, out)
    return hashlib.sha256(out.read_bytes()).hexdigest()


class Functions(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, cfg: dict, bucket_arn: str, log_key_arn: str,
                 environment: dict, tags: dict[str, str]):
        super().__init__(scope, id)
        if cfg.get("package", "zip") == "image":
            self.repository = repository(self, "repo", f"{name}/functions", tags)
            image_uri = f"{self.repository.repository_url}:{cfg.get('image_tag', 'latest')}"
            code = lambda folder: {"package_type": "Image", "image_uri": image_uri,  # noqa: E731
                                   "image_config": {"command": [f"functions.{folder}.handler.handler"]}}
        else:
            zip_path = ROOT / "build" / "lambda.zip"
            build_zip(zip_path)
            asset = TerraformAsset(self, "code", path=str(zip_path), type=AssetType.FILE)
            code = lambda folder: {"runtime": "python3.11", "handler": f"functions.{folder}.handler.handler",  # noqa: E731
                                   "filename": asset.path, "source_code_hash": asset.asset_hash,
                                   "layers": cfg.get("layer_arns") or None}
        self.code = code  # how each function's code ships: the monthly stop (modules.monthly_stop) reuses it
        self.arns: dict[str, str] = {}
        for state, folder in HANDLERS.items():
            fn_name = f"{name}-{folder.replace('_', '-')}"
            logs = CloudwatchLogGroup(self, f"{folder}-logs", name=f"/aws/lambda/{fn_name}",
                                      retention_in_days=cfg["log_retention_days"], kms_key_id=log_key_arn, tags=tags)
            accept_log_group(logs)
            role = IamRole(self, f"{folder}-role", name_prefix=f"odin-{folder.replace('_', '-')[:20]}-",
                           assume_role_policy=assume("lambda.amazonaws.com"), tags=tags)
            IamRolePolicy(self, f"{folder}-policy", role=role.id, policy=json.dumps(document(
                *s3_statements(bucket_arn, STAGE_IO[state]),
                {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": f"{logs.arn}:*"},
                xray_statement())))
            fn = LambdaFunction(
                self, folder, function_name=fn_name, role=role.arn, **code(folder),
                memory_size=cfg["memory_mb"], timeout=cfg["timeout_s"], architectures=["x86_64"],
                environment=LambdaFunctionEnvironment(variables={**environment, "ODIN_NO_PROGRESS": "1"}),
                tracing_config={"mode": "Active"}, reserved_concurrent_executions=50,
                depends_on=[logs], tags=tags)
            accept_function(fn, cfg)
            self.arns[state] = fn.arn


def accept_function(fn: LambdaFunction, cfg: dict, why_no_dlq: str = "only the state machine invokes the function, "
                    "synchronously; its Retry and Catch handle every failure (async-only setting)") -> None:
    """The checkov findings every function of the stack accepts, each with its reason."""
    accept(fn, "CKV_AWS_116", f"no dead-letter queue: {why_no_dlq}")
    accept(fn, "CKV_AWS_117", "not in a VPC: the stages reach S3 and public weather APIs; a VPC would need "
           "a NAT gateway for that, and the functions have no private resource to reach")
    accept(fn, "CKV_AWS_173", "environment not under a customer key: it holds only names (profile, bucket, "
           "budget, compute environments) and flags, no secrets; Lambda encrypts it at rest with its own key")
    if cfg.get("package", "zip") == "image":
        accept(fn, "CKV_AWS_272", "no code signing: the function runs a container image, and Lambda code "
               "signing covers only .zip packages; the image is pinned by an immutable, scanned ECR tag")


def accept_log_group(logs: CloudwatchLogGroup) -> None:
    accept(logs, "CKV_AWS_338", "retention below a year by design: each profile sets it "
           "(functions.log_retention_days: 90 on AWS); the run reports under runs/ are the lasting record")


def placeholder_arns(name: str, region: str) -> dict[str, str]:
    """Function ARNs for a profile without Lambda (the emulator): its tasks are mocked by name."""
    return {state: f"arn:aws:lambda:{region}:000000000000:function:{name}-{folder.replace('_', '-')}"
            for state, folder in HANDLERS.items()}



