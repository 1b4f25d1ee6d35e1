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

    _alarms_reach_the_topic(kw)

    # destroy is proven on LocalStack (tests/test_localstack.py); moto's state goes with its server
    print(f"moto: full AWS stack applied in {applied:.0f} s")


def _alarms_reach_the_topic(kw: dict) -> None:
    """The alarm path as applied: each failed-run alarm's action is the stack's topic, the topic is encrypted
    with the stack's own rotated key (not alias/aws/sns, to which CloudWatch cannot publish), its policy lets
    CloudWatch, EventBridge and Budgets publish, and what CloudWatch publishes there is delivered. moto runs no
    alarm actions and has no Budgets notifications, so the test publishes the alarm's message itself, to a
    queue it subscribes (the profile names no subscriber: `terraform plan` warns about that)."""
    cw, sns, sqs, kms = (boto3.client(n, **kw) for n in ("cloudwatch", "sns", "sqs", "kms"))
    alarms = [a for a in cw.describe_alarms()["MetricAlarms"] if a["AlarmName"].startswith("odin-aws-Executions")]
    assert {a["MetricName"] for a in alarms} == {"ExecutionsFailed", "ExecutionsTimedOut"}
    (topic,) = {arn for a in alarms for arn in a["AlarmActions"]}
    attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    key = attributes["KmsMasterKeyId"]
    assert "alias/aws/sns" not in key and kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]
    principals = {st["Principal"]["Service"] for st in json.loads(attributes["Policy"])["Statement"]}
    assert principals >= {"cloudwatch.amazonaws.com", "events.amazonaws.com", "budgets.amazonaws.com"}
    queue = sqs.create_queue(QueueName="alarm-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    subscribed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [x["Protocol"] for x in subscribed if x["Protocol"] == "lambda"] == ["lambda"]  # the monthly stop
    for sub in subscribed:  # moto cannot run the Lambda without Docker: its delivery is tested in test_monthly_stop
        if sub["Protocol"] == "lambda":
            sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    alarm = alarms[0]
    cw.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason="a run failed")
    sns.publish(TopicArn=topic, Subject=f'ALARM: "{alarm["AlarmName"]}"', Message=json.dumps(
        {"AlarmName": alarm["AlarmName"], "NewStateValue": "ALARM", "NewStateReason": "a run failed"}))
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2).get("Messages", [])
    assert alarm["AlarmName"] in json.loads(json.loads(message["Body"])["Message"])["AlarmName"]
