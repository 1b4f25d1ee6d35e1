"""Who may do what: the IAM statements of every part of the stack, in one place.

Data: the bucket has three prefixes (``modules.storage``): ``input/`` (users' photos and deployments: read by
the stages, written only by the CLI's own credentials, never by a stage), ``tmp/<session>/`` (a run's work
files) and ``runs/<session>/`` (its results). ``STAGE_IO`` says, for every stage of ``wildlife.graph.GRAPH``
and the functions the state machine adds around them (the Stage 0 shards, the failure report, the Batch
job), which prefixes it reads and which keys it writes; each Lambda role and the Batch job role get exactly
that. tests/test_iam.py runs the handlers over an S3 emulator and checks every key each stage wrote against
its role, and that every stage of the graph has an entry here.

Wildcards: an action or ARN field with ``*`` is refused by tests/test_iam.py unless the action is in
``UNSCOPED`` below, with the reason AWS gives no narrower resource for it. ``*`` inside an object key
pattern (``tmp/*/media.parquet``: any session) is a key pattern within this stack's bucket, not a wildcard
over accounts or services.
"""

from __future__ import annotations

from dataclasses import dataclass

from modules.storage import INPUT_PREFIX, RUNS_PREFIX, WORK_PREFIX
from wildlife.graph import GRAPH
from wildlife.monthly_stop import MARKER_KEY

# Actions that AWS authorises only on Resource "*": the service defines no resource type for them.
_NO_RESOURCE_TYPE = "AWS defines no resource type for this action: the only Resource it accepts is '*'"
UNSCOPED: dict[str, str] = {
    "xray:PutTraceSegments": f"{_NO_RESOURCE_TYPE} (Lambda and Step Functions tracing is Active)",
    "xray:PutTelemetryRecords": f"{_NO_RESOURCE_TYPE} (Lambda and Step Functions tracing is Active)",
    "xray:GetSamplingRules": f"{_NO_RESOURCE_TYPE} (Step Functions' X-Ray sampling)",
    "xray:GetSamplingTargets": f"{_NO_RESOURCE_TYPE} (Step Functions' X-Ray sampling)",
    "batch:DescribeJobs": f"{_NO_RESOURCE_TYPE}; submitJob.sync polls the job it started with it",
    "logs:CreateLogDelivery": f"{_NO_RESOURCE_TYPE}; Step Functions sets up its execution log with it",
    "logs:GetLogDelivery": f"{_NO_RESOURCE_TYPE}; Step Functions sets up its execution log with it",
    "logs:UpdateLogDelivery": f"{_NO_RESOURCE_TYPE}; Step Functions sets up its execution log with it",
    "logs:DeleteLogDelivery": f"{_NO_RESOURCE_TYPE}; Step Functions sets up its execution log with it",
    "logs:ListLogDeliveries": f"{_NO_RESOURCE_TYPE}; Step Functions sets up its execution log with it",
    "logs:DescribeResourcePolicies": f"{_NO_RESOURCE_TYPE}; Step Functions checks the log resource policy "
                                     "this stack creates (so the role needs no logs:PutResourcePolicy)",
    "ecr:GetAuthorizationToken": f"{_NO_RESOURCE_TYPE} (the ECR endpoints' policy: Batch logs in to pull)",
    "sts:GetCallerIdentity": f"{_NO_RESOURCE_TYPE} (the STS endpoint's policy: any caller may ask who it is)",
    "logs:DescribeLogGroups": "Step Functions lists log groups account-wide when it checks its log destination; "
                              "AWS documents '*' for it in the state machine's logging policy",
}
# Key policies: "Resource": "*" in a KMS key policy means "this key" (a key policy can name no other).
KEY_POLICY_RESOURCE = "*"

SESSION = "*"  # any run's session id in a key pattern


def work(name: str) -> str:
    return f"{WORK_PREFIX}{SESSION}/{name}"


def result(name: str) -> str:
    return f"{RUNS_PREFIX}{SESSION}/{name}"


@dataclass(frozen=True)
class StageIO:
    reads: tuple[str, ...]   # key patterns it may read (and list under)
    writes: tuple[str, ...]  # key patterns it may write: its own outputs, nothing else


PHOTOS = f"{INPUT_PREFIX}*"  # the photos and the deployments table a run names
STAGE_IO: dict[str, StageIO] = {
    # GuardBudget also reads the monthly stop's marker (``wildlife.monthly_stop``): a stopped stack runs nothing
    "GuardBudget": StageIO(reads=(PHOTOS, MARKER_KEY), writes=(work("manifest.parquet"), work("stage0-shards.json"))),
    "Stage0ExifShards": StageIO(reads=(PHOTOS, work("manifest.parquet"), work("stage0/*")),
                                writes=(work("stage0/*"),)),
    "Stage0Exif": StageIO(reads=(PHOTOS, work("manifest.parquet"), work("stage0/*")),
                          writes=(work("stage0/*"), work("media.parquet"))),
    "CostEstimation": StageIO(reads=(work("media.parquet"),), writes=()),
    # the collect step: reads the shards' results and sidecars; Stage 2 reads the shards themselves
    "Stage1Detect": StageIO(reads=(work("stage1/*"),), writes=()),
    "Stage2Events": StageIO(reads=(work("media.parquet"), work("stage1/*")),
                            writes=(work("images.parquet"), work("events.parquet"), result("detections.parquet"))),
    "WeatherEnrichment": StageIO(reads=(PHOTOS, work("events.parquet"), work("media.parquet")),
                                 writes=(result("weather/*"),)),
    # WriteOutputs reads back the Camtrap DP package it wrote, to validate it
    "WriteOutputs": StageIO(reads=(PHOTOS, f"{WORK_PREFIX}*", result("*")), writes=(result("*"),)),
    "WriteFailureReport": StageIO(reads=(f"{WORK_PREFIX}*",), writes=(result("run_report.json"),)),
}
# The monthly stop's Lambda: reads and overwrites its marker (never deletes it), nothing else in the bucket.
MONTHLY_STOP_IO = StageIO(reads=(MARKER_KEY,), writes=(MARKER_KEY,))
# Stage 1's Batch containers: read the photos and the media table, write one result file per shard.
BATCH_JOB_IO = StageIO(reads=(PHOTOS, work("media.parquet"), work("stage1/*")), writes=(work("stage1/*"),))


def graph_functions() -> set[str]:
    """Every Lambda the state machine calls, by state name, as ``wildlife.asl`` names them."""
    names = {s.name for s in GRAPH}
    names |= {f"{s.name}Shards" for s in GRAPH if s.fan_out}
    return names | {"WriteFailureReport"}


def _list_prefixes(patterns: tuple[str, ...]) -> list[str]:
    """ListBucket's s3:prefix values: under each folder it may read or write, and at each key it may read or
    write (pyarrow lists ``<key>/`` when it asks whether a missing key is a folder)."""
    out = set()
    for p in patterns:
        out.add(p if p.endswith("*") else f"{p}*")
        if p.endswith("/*"):
            out.add(p[:-1])  # the folder itself, as a listing names it
    return sorted(out)


def s3_statements(bucket_arn: str, io: StageIO) -> list[dict]:
    statements = []
    if io.reads:
        statements.append({"Sid": "ReadItsInputs", "Effect": "Allow", "Action": "s3:GetObject",
                           "Resource": [f"{bucket_arn}/{p}" for p in io.reads]})
        statements.append({"Sid": "ListItsInputs", "Effect": "Allow", "Action": "s3:ListBucket",
                           "Resource": bucket_arn,
                           "Condition": {"StringLike": {"s3:prefix": _list_prefixes(io.reads + io.writes)}}})
    if io.writes:
        statements.append({"Sid": "WriteItsOutputs", "Effect": "Allow", "Action": "s3:PutObject",
                           "Resource": [f"{bucket_arn}/{p}" for p in io.writes]})
    return statements


def xray_statement() -> dict:
    return {"Sid": "Tracing", "Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            "Resource": "*"}


def document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}
