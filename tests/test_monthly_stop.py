"""The monthly stop on an emulator: the Lambda's handler, given the SNS event AWS Budgets publishes (its exact
plain-text message), stops the stack's compute environments on moto's Batch and writes the stop marker in
moto's S3; GuardBudget and `run --target aws` then refuse with exit 3, naming the budget and how to lift the
stop; the next month's schedule and `budget resume` lift it. The wiring (subscription, permissions, role) is
checked on the synthesised stack: moto cannot run a Lambda without Docker."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid

import boto3
import pytest
from conftest import ROOT, SAMPLE

from wildlife import monthly_stop
from wildlife.budget import BudgetExceeded

BUDGET = "odin-aws-monthly"
NOW = dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)


def budgets_event(budget: str, threshold: str, actual: str, budgeted: str = "$135.00") -> dict:
    """An SNS delivery of an AWS Budgets notification, as Budgets words it (plain text, not JSON)."""
    message = (f"AWS Budget Notification November 24, 2026\nAWS Account 123456789012\n\nDear AWS Customer,\n\n"
               f"You requested that we alert you when the ACTUAL Cost associated with your {budget} budget is greater "
               f"than {threshold} for the current month. The ACTUAL Cost associated with this budget is {actual}. "
               f"You can find additional details below and by accessing the AWS Budgets dashboard [1].\n\n"
               f"Budget Name: {budget}\nBudget Type: Cost\nBudgeted Amount: {budgeted}\nAlert Type: ACTUAL\n"
               f"Alert Threshold: > {threshold}\nACTUAL Amount: {actual}\n\n"
               f"[1] https://console.aws.amazon.com/billing/home#/budgets\n")
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {
        "Type": "Notification", "TopicArn": "arn:aws:sns:eu-north-1:123456789012:odin-aws-alarms",
        "Subject": f"AWS Budgets: {budget} has exceeded your alert threshold", "Message": message,
        "Timestamp": "2026-11-24T07:00:00.000Z"}}]}


@pytest.fixture
def stack(s3_env, monkeypatch):
    """moto's Batch with the aws profile's compute environments, and a bucket of the stack's own."""
    env, _ = s3_env
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, env[key])
    from modules import cloud  # noqa: PLC0415

    profile = cloud.profile("aws")
    envs = monthly_stop.environments(profile["name"], profile["compute"])
    iam, ec2, batch, s3 = (boto3.client(s) for s in ("iam", "ec2", "batch", "s3"))
    bucket = f"odin-stop-{uuid.uuid4().hex[:12]}"  # each test its own stack bucket
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    known = {c["computeEnvironmentName"] for c in batch.describe_compute_environments()["computeEnvironments"]}
    if not set(envs) <= known:
        role = iam.create_role(RoleName=f"batch-{os.getpid()}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        instance = iam.create_instance_profile(InstanceProfileName=f"batch-{os.getpid()}")["InstanceProfile"]["Arn"]
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName=f"b{os.getpid()}", Description="b", VpcId=vpc)["GroupId"]
        for name, size in envs.items():
            batch.create_compute_environment(
                computeEnvironmentName=name, type="MANAGED", state="ENABLED", serviceRole=role,
                computeResources={"type": "SPOT", "minvCpus": 0, "maxvCpus": size["max_vcpus"],
                                  "instanceTypes": ["c5.2xlarge"], "subnets": [subnet], "securityGroupIds": [group],
                                  "instanceRole": instance})
    for name in envs:  # as deployed (an earlier test may have stopped them)
        batch.update_compute_environment(computeEnvironment=name, state="ENABLED")
    sent = []  # what we asked Batch for (moto records a compute environment's state, not its new vCPUs)
    batch.meta.events.register("provide-client-params.batch.UpdateComputeEnvironment",
                               lambda params, **kw: sent.append(params))
    return {"batch": batch, "s3": s3, "bucket": bucket, "envs": envs, "sent": sent, "env": env, "profile": profile}


def _states(batch, envs) -> dict[str, str]:
    described = batch.describe_compute_environments(computeEnvironments=list(envs))["computeEnvironments"]
    return {c["computeEnvironmentName"]: c["state"] for c in described}


def _handle(stack, event, now=NOW):
    return monthly_stop.handle(event, stack["batch"], stack["s3"], bucket=stack["bucket"], budget=BUDGET,
                               envs=stack["envs"], now=now)


def test_the_alert_and_other_budgets_stop_nothing(stack):
    assert _handle(stack, budgets_event(BUDGET, "$108.00", "$110.20"))["action"] == "none"  # the 80% alert
    assert _handle(stack, budgets_event("someone-elses-monthly", "$135.00", "$140.00"))["action"] == "none"
    assert _handle(stack, {"Records": [{"Sns": {"Message": json.dumps({"AlarmName": "x"})}}]})["action"] == "none"
    assert stack["sent"] == [] and set(_states(stack["batch"], stack["envs"]).values()) == {"ENABLED"}
    monthly_stop.refuse_if_stopped(stack["s3"], stack["bucket"], NOW)  # no marker: runs may start


def test_at_100_percent_the_stack_stops_spending_and_runs_are_refused(stack):
    done = _handle(stack, budgets_event(BUDGET, "$135.00", "$135.42"))
    assert done["action"] == "stopped"
    assert set(_states(stack["batch"], stack["envs"]).values()) == {"DISABLED"}
    assert {p["computeEnvironment"]: p["computeResources"] for p in stack["sent"]} == {
        name: {"minvCpus": 0, "maxvCpus": 0} for name in stack["envs"]}
    marker = json.loads(stack["s3"].get_object(Bucket=stack["bucket"], Key=monthly_stop.MARKER_KEY)["Body"].read())
    assert marker["stopped"] is True and marker["month"] == "2026-11" and marker["budget"] == BUDGET
    with pytest.raises(BudgetExceeded) as refused:
        monthly_stop.refuse_if_stopped(stack["s3"], stack["bucket"], NOW)
    assert refused.value.exit_code == 3
    assert BUDGET in str(refused.value) and "scripts/run.py budget resume" in str(refused.value)
    assert "2026-12-01" in str(refused.value)
    # a stop is for its month: in December the marker no longer refuses anything
    monthly_stop.refuse_if_stopped(stack["s3"], stack["bucket"], dt.datetime(2026, 12, 1, 0, 6, tzinfo=dt.UTC))


def test_the_new_months_schedule_restores_the_profiles_vcpus(stack):
    _handle(stack, budgets_event(BUDGET, "$135.00", "$150.00"))
    stack["sent"].clear()
    december = dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC)
    assert _handle(stack, {"action": "resume"}, december)["action"] == "resumed"
    assert set(_states(stack["batch"], stack["envs"]).values()) == {"ENABLED"}
    assert {p["computeEnvironment"]: p["computeResources"]["maxvCpus"] for p in stack["sent"]} == {
        name: 64 for name in stack["envs"]}
    stack["sent"].clear()
    assert _handle(stack, {"action": "resume"}, december)["action"] == "none"  # nothing stopped: nothing to do
    assert stack["sent"] == []


def _cli(stack, *args, outputs=None, tmp_path=None):
    out = tmp_path / "outputs.json"
    out.write_text(json.dumps(outputs or {"bucket": stack["bucket"], "state_machine_arn": "arn:aws:states:x",
                                          "job_queue": "q"}))
    env = dict(stack["env"], ODIN_STACK_OUTPUTS=str(out), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "scripts/run.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_stopped_stack_refuses_a_run_before_uploading_and_budget_resume_lifts_it(stack, tmp_path):
    monthly_stop.stop(stack["batch"], stack["s3"], bucket=stack["bucket"], envs=stack["envs"],
                      now=dt.datetime.now(dt.UTC),
                      note={"budget": BUDGET, "actual_usd": 150.0, "budgeted_usd": 135.0, "alert_type": "ACTUAL"})
    refused = _cli(stack, "run", "--input", str(SAMPLE / "photos"), "--output", str(tmp_path / "out"),
                   "--budget", "50", "--target", "aws", "--detector", "motion", tmp_path=tmp_path)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    said = " ".join((refused.stdout + refused.stderr).split())
    assert BUDGET in said and "budget resume" in said and "Traceback" not in said
    assert "Contents" not in stack["s3"].list_objects_v2(Bucket=stack["bucket"], Prefix="input/")  # nothing uploaded
    status = _cli(stack, "budget", "status", tmp_path=tmp_path)
    assert status.returncode == 0 and "stopped since" in status.stderr  # the console writes to stderr
    resumed = _cli(stack, "budget", "resume", tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(_states(stack["batch"], stack["envs"]).values()) == {"ENABLED"}
    monthly_stop.refuse_if_stopped(stack["s3"], stack["bucket"])  # runs may start again


def test_guard_budget_refuses_a_run_on_a_stopped_stack_by_the_name_the_state_machine_catches(stack):
    monthly_stop.stop(stack["batch"], stack["s3"], bucket=stack["bucket"], envs=stack["envs"],
                      now=dt.datetime.now(dt.UTC),
                      note={"budget": BUDGET, "actual_usd": 150.0, "budgeted_usd": 135.0, "alert_type": "ACTUAL"})
    script = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from functions.guard_budget.handler import handler
try:
    handler({{"state": {{"input_uri": "{SAMPLE / 'photos'}", "output_uri": "s3://{stack['bucket']}/runs/s1",
              "work_uri": "s3://{stack['bucket']}/tmp/s1", "budget_dkk": 100, "detector": "motion"}},
             "session_id": "s1"}}, None)
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=stack["env"])
    assert result.stdout.startswith(f"BudgetExceeded the monthly budget {BUDGET}"), result.stderr[-2000:]
    assert "Contents" not in stack["s3"].list_objects_v2(Bucket=stack["bucket"], Prefix="tmp/")  # nothing written


def test_the_notification_is_wired_to_the_stop_with_least_privilege(tmp_path):
    """The synthesised wiring, which no free emulator runs: the 100% notification goes to the topic the
    function is subscribed to; only that topic and the monthly schedule may invoke it; its role may change
    only the stack's compute environments and its marker."""
    out = subprocess.run([sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, ODIN_PROFILES="aws", ODIN_SYNTH_OUT=str(tmp_path / "synth"),
                                  JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20"))
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "synth/stacks/odin-aws/cdk.tf.json").read_text())["resource"]
    (budget,) = res["aws_budgets_budget"].values()
    assert budget["name"] == BUDGET
    (topic_name,) = res["aws_sns_topic"]
    at_100 = [n for n in budget["notification"] if n["threshold"] == 100 and n["notification_type"] == "ACTUAL"]
    assert at_100 and at_100[0]["subscriber_sns_topic_arns"] == [f"${{aws_sns_topic.{topic_name}.arn}}"]
    (fn_name, fn), = [(k, f) for k, f in res["aws_lambda_function"].items()
                      if f["function_name"] == "odin-aws-monthly-stop"]
    assert fn["image_config"]["command"] == ["functions.monthly_stop.handler.handler"]
    variables = fn["environment"]["variables"]
    assert variables["ODIN_BUDGET_NAME"] == BUDGET
    assert json.loads(variables["ODIN_COMPUTE_ENVIRONMENTS"]) == {
        "odin-aws-cpu": {"max_vcpus": 64, "min_vcpus": 0}, "odin-aws-gpu": {"max_vcpus": 64, "min_vcpus": 0}}
    (sub,) = [s for s in res["aws_sns_topic_subscription"].values() if s["protocol"] == "lambda"]
    assert sub["endpoint"] == f"${{aws_lambda_function.{fn_name}.arn}}"
    assert sub["topic_arn"] == f"${{aws_sns_topic.{topic_name}.arn}}"
    permissions = {p["principal"]: p["source_arn"] for p in res["aws_lambda_permission"].values()}
    assert permissions["sns.amazonaws.com"] == f"${{aws_sns_topic.{topic_name}.arn}}"
    (rule_name, rule), = [(k, r) for k, r in res["aws_cloudwatch_event_rule"].items() if "schedule_expression" in r]
    assert rule["schedule_expression"] == "cron(5 0 1 * ? *)"
    assert permissions["events.amazonaws.com"] == f"${{aws_cloudwatch_event_rule.{rule_name}.arn}}"
    (target,) = [t for t in res["aws_cloudwatch_event_target"].values()
                 if t["rule"] == f"${{aws_cloudwatch_event_rule.{rule_name}.name}}"]
    assert json.loads(target["input"]) == {"action": "resume"}
    (policy,) = [p for k, p in res["aws_iam_role_policy"].items() if k.startswith("monthly-stop")]
    statements = json.loads(policy["policy"])["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"batch:UpdateComputeEnvironment", "s3:GetObject", "s3:ListBucket", "s3:PutObject",
                       "logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments",
                       "xray:PutTelemetryRecords"}
    (update,) = [s for s in statements if s["Action"] == "batch:UpdateComputeEnvironment"]
    assert sorted(update["Resource"]) == sorted(f"${{aws_batch_compute_environment.{k}.arn}}"
                                                for k in res["aws_batch_compute_environment"])
    writes = [r for s in statements if s["Action"] == "s3:PutObject" for r in s["Resource"]]
    assert [w.split("}/", 1)[1] for w in writes] == [monthly_stop.MARKER_KEY]
