"""Who may do what in the synthesised AWS stack: no wildcard beyond what AWS forces (each with its reason in
modules/access.py), no stage able to write users' photos, every stage writing only the keys its role allows
(checked by running the handlers over an S3 emulator), and alarms that can reach a subscriber."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import ROOT, SAMPLE

sys.path.insert(0, str(ROOT))
from modules import ci_roles, terraform
from modules.access import BATCH_JOB_IO, STAGE_IO, UNSCOPED, graph_functions
from modules.functions import HANDLERS
from modules.key import PUBLISHERS
from modules.storage import bucket_prefix

# AWS-managed policies a role may carry, and why: AWS Batch's own service and instance roles.
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole": "AWS Batch manages the compute environment's EC2",
    "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role": "the ECS agent on Batch instances",
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """Both stacks, the AWS one with an email subscriber as a profile would name it."""
    out = tmp_path_factory.mktemp("cdktf.out")
    script = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from cdktn import App
import main
app = App(outdir={str(out)!r})
for profile in main.load_profiles():
    if profile["name"] == "odin-aws":
        profile["monitoring"]["alarm_email"] = "wildlife-ops@example.org"
    main.OdinStack(app, profile)
app.synth()
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=terraform.env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {n: json.loads((out / "stacks" / n / "cdk.tf.json").read_text()) for n in ("odin-aws", "odin-localstack")}


def policies(stack: dict) -> list[tuple[str, dict]]:
    """Every policy document in the stack, with the address of the resource that holds it."""
    fields = {"aws_iam_role_policy": "policy", "aws_kms_key": "policy", "aws_sns_topic_policy": "policy",
              "aws_vpc_endpoint_policy": "policy", "aws_s3_bucket_policy": "policy",
              "aws_cloudwatch_log_resource_policy": "policy_document", "aws_iam_role": "assume_role_policy"}
    return [(f"{kind}.{name}", json.loads(body[field])) for kind, field in fields.items()
            for name, body in stack["resource"].get(kind, {}).items()]


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def wildcards(address: str, doc: dict) -> list[str]:
    """Allow statements broader than AWS forces: a wildcard action, '*' as the resource of an action AWS can
    scope, or '*' in an ARN's partition, service, region or account field."""
    found = []
    for st in doc["Statement"]:
        if st["Effect"] != "Allow":
            continue
        actions = _listed(st.get("Action", []))
        key_admin = address.startswith("aws_kms_key.") and st.get("Sid") == "AccountAdministersTheKey"
        found += [f"{address}: action {a}" for a in actions if "*" in a and not key_admin
                  and not (address.startswith("aws_kms_key.") and a == "kms:GenerateDataKey*")]
        for resource in _listed(st.get("Resource", [])):
            if resource == "*":
                if not address.startswith("aws_kms_key."):  # in a key policy, "*" is the key itself
                    found += [f"{address}: {a} on *" for a in actions if a not in UNSCOPED]
            elif resource.startswith("arn:") and "*" in ":".join(resource.split(":")[:5]):
                found.append(f"{address}: {resource}")
    return found


@pytest.mark.parametrize("name", ["odin-aws", "odin-localstack"])
def test_no_wildcard_beyond_what_aws_forces(stacks, name):
    found = [w for address, doc in policies(stacks[name]) for w in wildcards(address, doc)]
    assert found == []
    attached = {a["policy_arn"] for a in stacks[name]["resource"].get("aws_iam_role_policy_attachment", {}).values()}
    assert attached <= set(MANAGED)
    assert all(len(reason) > 30 for reason in UNSCOPED.values())


def test_the_wildcard_walk_finds_wildcards():
    doc = {"Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Allow", "Action": "batch:TerminateJob", "Resource": "*"},
        {"Effect": "Allow", "Action": "events:PutRule", "Resource": "arn:aws:events:*:*:rule/x"},
        {"Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}
    assert len(wildcards("aws_iam_role_policy.x", doc)) == 3


def _role_s3(stack: dict) -> dict[str, dict[str, list[str]]]:
    """Role name (by its policy's construct path) -> S3 action -> key patterns."""
    out = {}
    for name, body in stack["resource"]["aws_iam_role_policy"].items():
        grants: dict[str, list[str]] = {}
        for st in json.loads(body["policy"])["Statement"]:
            for action in _listed(st["Action"]):
                if action.startswith("s3:"):
                    grants.setdefault(action, []).extend(
                        r.split("}/", 1)[-1] for r in _listed(st["Resource"]) if "}/" in r)
        out[name] = grants
    return out


def test_every_function_of_the_graph_has_its_own_reads_and_writes():
    assert set(HANDLERS) == graph_functions() == set(STAGE_IO)


def test_no_stage_and_no_job_may_write_the_users_photos(stacks):
    for role, grants in _role_s3(stacks["odin-aws"]).items():
        assert not [k for k in grants.get("s3:PutObject", []) if fnmatch.fnmatchcase("input/x/y.jpg", k)
                    or k.startswith("input") or k == "*"], role
        assert "s3:DeleteObject" not in grants and "s3:*" not in grants
    writers = {role for role, grants in _role_s3(stacks["odin-aws"]).items() if grants.get("s3:PutObject")}
    assert len(writers) == len([io for io in STAGE_IO.values() if io.writes]) + 2  # + the Batch job, the stop


def test_alarms_reach_a_subscriber_through_a_key_they_may_use(stacks):
    """The synthesised alarm path (not an emulator run: LocalStack's free core has no Budgets and moto does not
    deliver alarm actions): key, topic, publishers, subscribers, alarm actions."""
    res = stacks["odin-aws"]["resource"]
    (key_name, key), = res["aws_kms_key"].items()
    assert key["enable_key_rotation"] is True
    key_policy = json.loads(key["policy"])
    (use,) = [s for s in key_policy["Statement"] if s.get("Sid") == "AlarmPublishersEncrypt"]
    assert set(use["Principal"]["Service"]) == set(PUBLISHERS) == {
        "cloudwatch.amazonaws.com", "budgets.amazonaws.com", "events.amazonaws.com"}
    assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(use["Action"])
    (topic_name, topic), = res["aws_sns_topic"].items()
    assert topic["kms_master_key_id"] == f"${{aws_kms_key.{key_name}.arn}}"  # not alias/aws/sns
    assert all(g["kms_key_id"] == topic["kms_master_key_id"] for g in res["aws_cloudwatch_log_group"].values())
    topic_arn = f"${{aws_sns_topic.{topic_name}.arn}}"
    (policy,) = res["aws_sns_topic_policy"].values()
    publishers = {s["Principal"]["Service"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert set(publishers) == set(PUBLISHERS)
    assert all(s["Action"] == "sns:Publish" and s["Condition"] for s in publishers.values())
    subs = {s["protocol"]: s for s in res["aws_sns_topic_subscription"].values()}
    chosen = stacks["odin-aws"]["locals"]
    assert chosen["alarm_email"] == '${var.alarm_email != "" ? var.alarm_email : "wildlife-ops@example.org"}'
    assert subs["email"]["endpoint"] == "${local.alarm_email}" and subs["email"]["topic_arn"] == topic_arn
    assert subs["email"]["count"] == '${local.alarm_email == "" ? 0 : 1}'
    assert subs["https"]["endpoint"] == "${local.alarm_https_endpoint}"
    alarms = res["aws_cloudwatch_metric_alarm"].values()
    assert {a["metric_name"] for a in alarms} == {"ExecutionsFailed", "ExecutionsTimedOut"}
    assert all(a["alarm_actions"] == [topic_arn] for a in alarms)
    (budget,) = res["aws_budgets_budget"].values()
    assert budget["notification"][0]["subscriber_sns_topic_arns"] == [topic_arn]
    # the failed-job rule publishes to the topic (the other target is the monthly stop's schedule)
    assert [t["arn"] for t in res["aws_cloudwatch_event_target"].values() if "input" not in t] == [topic_arn]
    assert "alarm_subscriber" in stacks["odin-aws"]["check"]  # a plan with no subscriber warns


ENFORCED_BUCKET = "odin-iam-enforced"


def _s3_only(policy: str, bucket: str) -> dict:
    """A role's S3 statements for a moto user: the bucket's ARN filled in; ListBucket's s3:prefix condition
    dropped (moto evaluates no s3:prefix and would deny every listing), so object reads and writes are what
    the emulator enforces, key by key."""
    statements = []
    for st in json.loads(policy)["Statement"]:
        if not all(a.startswith("s3:") for a in _listed(st["Action"])):
            continue
        st = {k: v for k, v in st.items() if k != "Condition"}
        st["Resource"] = [f"arn:aws:s3:::{bucket}{r.split('}', 1)[1]}" if r.startswith("${") else r
                          for r in _listed(st["Resource"])]
        statements.append(st)
    return {"Version": "2012-10-17", "Statement": statements}


def _role_of(policy_name: str) -> str | None:
    """The stage (or "BatchJob") a synthesised role policy belongs to, from its construct name."""
    if policy_name.startswith("compute_job-data"):
        return "BatchJob"
    if not policy_name.startswith("functions_"):
        return None
    by_folder = {folder: state for state, folder in HANDLERS.items()}
    return by_folder.get(policy_name.removeprefix("functions_").split("-policy")[0])


@pytest.fixture
def enforced_s3(stacks):
    """A moto server of this test's own that enforces IAM, with a user per role holding that role's S3
    statements from the synthesised stack, and an administrator for the harness."""
    import boto3  # noqa: PLC0415
    from conftest import _free_port  # noqa: PLC0415

    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    kw = {"endpoint_url": url, "region_name": "eu-north-1", "aws_access_key_id": "testing",
          "aws_secret_access_key": "testing"}
    try:
        s3 = boto3.client("s3", **kw)
        for _ in range(150):
            try:
                s3.create_bucket(Bucket=ENFORCED_BUCKET,
                                 CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        for path in sorted((SAMPLE / "photos").rglob("*.JPG")):
            s3.upload_file(str(path), ENFORCED_BUCKET, f"input/s1/cards/{path.parent.name}/{path.name}")
        s3.upload_file(str(SAMPLE / "deployments.csv"), ENFORCED_BUCKET, "input/s1/deployments.csv")
        iam = boto3.client("iam", **kw)
        roles = {_role_of(name): _s3_only(body["policy"], ENFORCED_BUCKET)
                 for name, body in stacks["odin-aws"]["resource"]["aws_iam_role_policy"].items() if _role_of(name)}
        assert set(roles) == set(STAGE_IO) | {"BatchJob"}
        roles["Harness"] = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        keys = {}
        for who, doc in roles.items():
            iam.create_user(UserName=who)
            iam.put_user_policy(UserName=who, PolicyName="s3", PolicyDocument=json.dumps(doc))
            key = iam.create_access_key(UserName=who)["AccessKey"]
            keys[who] = (key["AccessKeyId"], key["SecretAccessKey"])
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset-auth", data=b"0", method="POST",
                                                      headers={"Content-Type": "application/json"}))
        yield dict(os.environ, AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION="eu-north-1"), keys
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _writes(env: dict, keys: dict, tmp_path) -> dict:
    """Each stage in state-machine order, under its own role's S3 permissions (moto refuses anything else);
    returns the keys each one wrote, and whether a stage's write to input/ was refused."""
    bucket = ENFORCED_BUCKET
    run_input = {"input_uri": f"s3://{bucket}/input/s1/cards", "output_uri": f"s3://{bucket}/runs/s1",
                 "work_uri": f"s3://{bucket}/tmp/s1", "deployments_uri": f"s3://{bucket}/input/s1/deployments.csv",
                 "budget_dkk": 25, "detector": "motion", "weather_days_back": 0}
    script = f"""
import boto3, importlib, json, os, subprocess, sys
sys.path.insert(0, {str(ROOT)!r})
KEYS = json.loads(os.environ["ODIN_TEST_KEYS"])
def as_role(who):
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = KEYS[who]
harness = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], aws_access_key_id=KEYS["Harness"][0],
                       aws_secret_access_key=KEYS["Harness"][1])
def keys():
    return {{o["Key"] + "@" + o["ETag"] for o in harness.list_objects_v2(Bucket={bucket!r}).get("Contents", [])}}
written, before = {{}}, keys()
def record(who):
    global before
    now = keys()
    written.setdefault(who, []).extend(sorted(k.rsplit("@", 1)[0] for k in now - before))
    before = now
state = json.loads({json.dumps(json.dumps(run_input))})
def call(folder, name):
    as_role(name)
    fn = importlib.import_module(f"functions.{{folder}}.handler").handler
    state[name] = fn({{"state": state, "session_id": "s1"}}, None)
    record(name)
call("guard_budget", "GuardBudget")
for i in range(state["GuardBudget"]["stage0_shards"]):
    as_role("Stage0ExifShards")
    importlib.import_module("functions.stage0_shard.handler").handler({{"state": state, "shard": i}}, None)
    record("Stage0ExifShards")
call("stage0_exif", "Stage0Exif")
call("cost_estimation", "CostEstimation")
as_role("BatchJob")
for i in range(2):
    env = dict(os.environ, AWS_BATCH_JOB_ARRAY_INDEX=str(i), AWS_BATCH_JOB_ARRAY_SIZE="2")
    subprocess.run([sys.executable, "-m", "runtimes.batch", *state["CostEstimation"]["stage1_command"]],
                   check=True, env=env, cwd={str(ROOT)!r})
    record("BatchJob")
for folder, name in [("stage1_collect", "Stage1Detect"), ("stage2_events", "Stage2Events"),
                     ("weather_enrichment", "WeatherEnrichment"), ("write_outputs", "WriteOutputs")]:
    call(folder, name)
state["error"] = {{"Error": "Demo", "Cause": "a failure report after the fact"}}
as_role("WriteFailureReport")
importlib.import_module("functions.failure_report.handler").handler({{"state": state, "session_id": "s1"}}, None)
record("WriteFailureReport")
as_role("Stage2Events")
try:  # a stage writing the users' photos is refused
    importlib.import_module("wildlife.fs").write_bytes("s3://{bucket}/input/s1/cards/evil.JPG", b"x")
    written["refused"] = False
except OSError:
    written["refused"] = True
print(json.dumps(written))
"""
    env = dict(env, ODIN_TEST_KEYS=json.dumps(keys))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_stage_runs_under_its_own_role_and_writes_only_what_it_allows(enforced_s3, tmp_path):
    """The handlers over an S3 emulator that enforces each role's S3 statements (moto): every stage still
    runs, each key it writes is one its entry in STAGE_IO names, and a write to input/ is refused."""
    written = _writes(*enforced_s3, tmp_path)
    assert written.pop("refused") is True
    assert written["WriteOutputs"] and written["BatchJob"] and written["Stage0ExifShards"]
    for who, keys in written.items():
        allowed = (BATCH_JOB_IO if who == "BatchJob" else STAGE_IO[who]).writes
        assert [k for k in keys if not any(fnmatch.fnmatchcase(k, p) for p in allowed)] == [], who
        assert not [k for k in keys if k.startswith("input/")]


def test_a_stage_writing_outside_its_keys_is_caught():
    allowed = STAGE_IO["Stage2Events"].writes
    assert not any(fnmatch.fnmatchcase("input/s1/cards/a.jpg", p) for p in allowed)
    assert not any(fnmatch.fnmatchcase("runs/s1/run_report.json", p) for p in allowed)
    assert any(fnmatch.fnmatchcase("tmp/s1/events.parquet", p) for p in allowed)


def test_lambda_and_state_machine_roles_may_write_their_traces(stacks):
    res = stacks["odin-aws"]["resource"]
    assert all(f["tracing_config"]["mode"] == "Active" for f in res["aws_lambda_function"].values())
    traced = [n for n, p in res["aws_iam_role_policy"].items() if "xray:PutTraceSegments" in p["policy"]]
    assert len(traced) == len(HANDLERS) + 2  # every function, the monthly stop and the state machine


def test_the_plan_role_only_reads_and_never_the_photos():
    doc = ci_roles.plan_permissions("odin-terraform-state", "odin/aws.tfstate", bucket_prefix("odin-aws"))
    verbs = ("Describe", "Get", "List", "View", "Validate")
    for st in doc["Statement"]:
        if st["Effect"] == "Allow":
            assert all(a.split(":")[1].startswith(verbs) for a in _listed(st["Action"])), st
            assert not [a for a in _listed(st["Action"]) if a in ("s3:Get*", "s3:GetObject*", "*")]
    (deny,) = [s for s in doc["Statement"] if s["Effect"] == "Deny"]
    assert "s3:GetObject" in deny["Action"] and deny["Resource"] == "arn:aws:s3:::odin-aws-data-*/*"
    (state,) = [s for s in doc["Statement"] if s.get("Sid") == "ReadTheState"]
    assert state["Resource"] == "arn:aws:s3:::odin-terraform-state/odin/aws.tfstate"
    trust = ci_roles.trust("123456789012", "wildlife/odin", "plan")["Statement"][0]
    assert trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == \
        "repo:wildlife/odin:environment:plan"
