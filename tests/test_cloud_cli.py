"""`run --target aws`, `status`, `logs` and `data` against a real Step Functions and S3 API (moto server)."""

from __future__ import annotations

import json
import urllib.request

import boto3
import pytest
from conftest import BUCKET, SAMPLE, odin

from wildlife import cloud

MACHINE = {"StartAt": "Result", "States": {"Result": {
    "Type": "Pass", "End": True,
    "Parameters": {"session_id.$": "$$.Execution.Name", "final_results": {"parquet_uri.$": "$.output_uri"}}}}}


@pytest.fixture(scope="module")
def stack(s3_env, tmp_path_factory):
    env, _ = s3_env
    req = urllib.request.Request(f"{env['AWS_ENDPOINT_URL']}/moto-api/config", method="POST",
                                 data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    sfn = boto3.client("stepfunctions", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="eu-north-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    arn = sfn.create_state_machine(name="odin-test", definition=json.dumps(MACHINE),
                                   roleArn="arn:aws:iam::123456789012:role/odin-states")["stateMachineArn"]
    outputs = tmp_path_factory.mktemp("stack") / "outputs.json"
    outputs.write_text(json.dumps({"bucket": BUCKET, "state_machine_arn": arn}))
    return dict(env, ODIN_STACK_OUTPUTS=str(outputs)), sfn, arn


def test_run_on_aws_uploads_guards_starts_and_follows(stack, tmp_path):
    env, sfn, arn = stack
    result = odin("run", "--target", "aws", "--input", str(SAMPLE / "photos"), "--output", str(tmp_path / "out"),
                  "--budget", "25", env=env)
    assert result.returncode == 0, result.stderr
    assert "uploaded 10 file(s)" in result.stderr and "Result" in result.stderr
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert execution["status"] == "SUCCEEDED"
    run_input = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert run_input["input_uri"] == f"s3://{BUCKET}/input/{execution['name']}/photos"
    assert run_input["output_uri"] == f"s3://{BUCKET}/runs/{execution['name']}" and run_input["budget_dkk"] == 25
    status = odin("status", "--target", "aws", env=env)
    assert status.returncode == 0 and execution["name"] in status.stderr
    logs = odin("logs", "--target", "aws", execution["name"], env=env)
    assert logs.returncode == 0 and "ExecutionSucceeded" in logs.stderr
    listing = odin("data", "list", f"s3://{BUCKET}/input/{execution['name']}", "--target", "aws", env=env)
    assert listing.stdout.count(".JPG") == 10


def test_run_on_aws_over_budget_starts_nothing(stack, tmp_path):
    env, sfn, arn = stack
    before = len(sfn.list_executions(stateMachineArn=arn)["executions"])
    result = odin("run", "--target", "aws", "--input", str(SAMPLE / "photos"), "--output", str(tmp_path / "o"),
                  "--budget", "0.001", env=env)
    assert result.returncode == 3 and "Nothing was uploaded or started" in result.stderr
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == before


def test_not_deployed_says_how_to_deploy(tmp_path):
    result = odin("status", "--target", "aws")
    assert result.returncode == 1 and "scripts/run.py apply --target aws" in result.stderr


def test_batch_cost_from_job_durations():
    jobs = [{"startedAt": 0, "stoppedAt": 1_800_000}, {"startedAt": 1000, "stoppedAt": 1_801_000},
            {"startedAt": 5, "stoppedAt": None}]  # still running: not counted
    hours, dkk = cloud.batch_cost(jobs, usd_per_hour=0.22, usd_to_dkk=6.45)
    assert hours == pytest.approx(1.0) and dkk == pytest.approx(0.22 * 6.45)
