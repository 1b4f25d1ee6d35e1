"""The full AWS profile (Lambda, Batch, Budgets, ECR, endpoints) applied by Terraform to moto server and one run
executed through the real Batch integration. moto's gaps are filled in ``motoharness``.

moto does not run Lambda code: each invocation returns the next queued result. The results queued here are
the ones our handlers return for the sample photos (computed on this host by ``modules.emulated``), so the
state machine sees real payloads; the Batch array job is moto's own ``batch:submitJob.sync``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
from conftest import ROOT, SAMPLE, _free_port

from modules import cloud

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _terraform(stack, *args, timeout=480):
    from modules import terraform  # noqa: PLC0415

    proc = subprocess.Popen(["terraform", *args, "-no-color"], cwd=stack, env=terraform.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # never SIGKILL: a killed apply can empty its state file
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"terraform {args[0]} took over {timeout} s:\n{out[-4000:]}")
    assert proc.returncode == 0, f"terraform {args[0]} failed:\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def moto():
    motoharness = pytest.importorskip("motoharness")
    port = _free_port()
    server = motoharness.start(port)
    yield port, motoharness
    server.stop()


def test_full_aws_profile_applies_runs_and_destroys_on_moto(moto, tmp_path, monkeypatch):
    port, harness = moto
    endpoint = f"http://127.0.0.1:{port}"
    out = tmp_path / "synth"
    env = dict(os.environ, ODIN_PROFILES="aws", ODIN_STATE_BACKEND="local", ODIN_AWS_ENDPOINT=endpoint,
               ODIN_SYNTH_OUT=str(out), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    synth = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert synth.returncode == 0, synth.stderr[-3000:]
    stack = out / "stacks" / "odin-aws"
    t0 = time.monotonic()
    _terraform(stack, "init", "-input=false")
    _terraform(stack, "apply", "-auto-approve", "-input=false")
    applied = time.monotonic() - t0
    monkeypatch.setenv("ODIN_SYNTH_OUT", str(out))
    outputs = cloud.stack_outputs("aws")
    made = {r["type"] for r in json.loads((stack / "terraform.odin-aws.tfstate").read_text())["resources"]}
    assert made >= {"aws_batch_compute_environment", "aws_batch_job_queue", "aws_batch_job_definition",
                    "aws_budgets_budget", "aws_lambda_function", "aws_ecr_repository", "aws_vpc_endpoint",
                    "aws_sfn_state_machine", "aws_cloudwatch_metric_alarm", "aws_s3_bucket_lifecycle_configuration"}

    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "eu-north-1"}.items():
        monkeypatch.setenv(key, value)
    kw = {"region_name": "eu-north-1"}
    s3, sfn, batch = boto3.client("s3", **kw), boto3.client("stepfunctions", **kw), boto3.client("batch", **kw)
    bucket, session = outputs["bucket"], "odin-moto-run"
    denied = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert "aws:SecureTransport" in denied
    s3.delete_bucket_policy(Bucket=bucket)  # moto speaks plain HTTP, which the TLS-only policy rightly refuses
    for path in sorted((SAMPLE / "photos").rglob("*.JPG")):
        s3.upload_file(str(path), bucket, f"input/{session}/photos/{path.relative_to(SAMPLE / 'photos').as_posix()}")
    run_input = {"input_uri": f"s3://{bucket}/input/{session}/photos", "output_uri": f"s3://{bucket}/runs/{session}",
                 "budget_dkk": 25, "use_spot": True, "max_images": None, "max_job_duration": None,
                 "weather_days_back": 0, "detector": "auto", "work_uri": f"s3://{bucket}/tmp/{session}",
                 "priority": "high"}  # run --priority high: Stage 1 waits in the high queue

    from modules import emulated  # noqa: PLC0415

    mocks, state = emulated.stand_in(run_input, session)  # what our handlers return for this run
    assert "error" not in state, state.get("error")
    order = ["GuardBudget", "Stage0ExifShard", "Stage0Exif", "CostEstimation", "Stage1DetectSummary",
             "Stage2Events", "WeatherEnrichment", "WriteOutputs"]
    for task in order:
        for answer in mocks[task]:
            harness.queue_lambda_result(port, answer["Return"]["Payload"])

    arn = sfn.start_execution(stateMachineArn=outputs["state_machine_arn"], name=session,
                              input=json.dumps(run_input))["executionArn"]
    deadline = time.monotonic() + 120
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish on moto within 120 s"
        time.sleep(1)
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    failures = [json.dumps(e, default=str)[:1500] for e in history if "Failed" in e["type"]]
    assert described["status"] == "SUCCEEDED", "\n".join(failures)
    result = json.loads(described["output"])
    assert result["session_id"] == session
    assert result["final_results"] == state["WriteOutputs"]
    # the array job really went through Batch's API, with the queue of its priority, our definition and size
    assert not batch.list_jobs(jobQueue=outputs["job_queue"], jobStatus="SUCCEEDED")["jobSummaryList"]
    jobs = batch.list_jobs(jobQueue=outputs["job_queues"]["high"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert {j["jobName"] for j in jobs} == {f"odin-stage1-{session}"}  # the array job and its children
    job = next(j for j in batch.describe_jobs(jobs=[j["jobId"] for j in jobs])["jobs"]
               if "size" in j.get("arrayProperties", {}))
    assert job["arrayProperties"]["size"] == state["CostEstimation"]["array_size"]
    assert job["container"]["command"] == state["CostEstimation"]["stage1_command"]

    # destroy is proven on LocalStack (tests/test_localstack.py); moto's state goes with its server
    print(f"moto: full AWS stack applied in {applied:.0f} s")
