"""The stack's code outside Terraform: the Lambda handlers over an S3 emulator, the reproducible zip, and
plans made without real AWS (none at all, and against a loopback stand-in for the two calls a plan makes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import BUCKET, ROOT, SAMPLE

from modules import terraform
from modules.functions import build_zip


def test_lambda_zip_is_reproducible(tmp_path):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    assert build_zip(a) == build_zip(b)
    names = zipfile.ZipFile(a).namelist()
    assert "functions/guard_budget/handler.py" in names and "wildlife/stages.py" in names
    assert not any("__pycache__" in n for n in names)


def test_handlers_run_the_pipeline_over_s3(s3_env, tmp_path):
    """The Lambda handlers in state-machine order over moto's S3, Stage 1 as two array-job shards."""
    env, client = s3_env
    for path in sorted((SAMPLE / "photos").rglob("*.JPG")):
        client.upload_file(str(path), BUCKET, f"input/cards/{path.parent.name}/{path.name}")
    client.upload_file(str(SAMPLE / "deployments.csv"), BUCKET, "input/deployments.csv")
    run_input = {"input_uri": f"s3://{BUCKET}/input/cards", "output_uri": f"s3://{BUCKET}/runs/exec-1",
                 "budget_dkk": 25, "use_spot": True, "weather_days_back": 0, "detector": "motion",
                 "deployments_uri": f"s3://{BUCKET}/input/deployments.csv", "work_uri": f"s3://{BUCKET}/tmp/exec-1"}
    script = f"""
import json, os, subprocess, sys
sys.path.insert(0, {str(ROOT)!r})
import importlib
state = json.loads({json.dumps(json.dumps(run_input))})
def call(folder, name):
    payload = importlib.import_module(f"functions.{{folder}}.handler").handler(
        {{"state": state, "session_id": "exec-1"}}, None)
    json.dumps(payload)  # must be JSON, as a Lambda result is
    assert len(json.dumps(payload)) < 256 * 1024
    state[name] = payload
call("guard_budget", "GuardBudget")
shard = importlib.import_module("functions.stage0_shard.handler").handler
for i in range(state["GuardBudget"]["stage0_shards"]):  # the Distributed Map's items
    shard({{"state": state, "shard": i, "session_id": "exec-1"}}, None)
call("stage0_exif", "Stage0Exif")
assert state["Stage0Exif"]["resumed"] == 10, state["Stage0Exif"]  # the shards read every header already
call("cost_estimation", "CostEstimation")
assert state["CostEstimation"]["stage1_timeout_s"] == 7200  # no --max-job-duration: the design's 2 hours
cmd = state["CostEstimation"]["stage1_command"]
for i in range(2):
    env = dict(os.environ, AWS_BATCH_JOB_ARRAY_INDEX=str(i), AWS_BATCH_JOB_ARRAY_SIZE="2")
    subprocess.run([sys.executable, "-m", "runtimes.batch", *cmd], check=True, env=env, cwd={str(ROOT)!r})
for folder, name in [("stage1_collect", "Stage1Detect"), ("stage2_events", "Stage2Events"),
                     ("weather_enrichment", "WeatherEnrichment"), ("write_outputs", "WriteOutputs")]:
    call(folder, name)
print(json.dumps(state["WriteOutputs"]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["report_uri"] == f"s3://{BUCKET}/runs/exec-1/run_report.json"
    report = json.loads(client.get_object(Bucket=BUCKET, Key="runs/exec-1/run_report.json")["Body"].read())
    assert report["session_id"] == "exec-1" and report["images"]["total"] == 10
    assert report["stages"]["Stage1Detect"]["photos"] == 10
    work = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="tmp/exec-1/")["Contents"]}
    assert "tmp/exec-1/media.parquet" in work  # work files under tmp/, which the bucket expires
    assert not client.list_objects_v2(Bucket=BUCKET, Prefix="runs/exec-1/_run/").get("Contents")


def test_budget_handler_raises_budget_exceeded_by_name(s3_env):
    env, _ = s3_env
    script = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from functions.guard_budget.handler import handler
try:
    handler({{"state": {{"input_uri": "{ROOT / 'data/sample/photos'}", "output_uri": "s3://{BUCKET}/runs/poor",
              "budget_dkk": 0.0001, "detector": "motion"}}, "session_id": "poor"}}, None)
except Exception as exc:
    print(type(exc).__name__)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(env, **{k: v for k, v in os.environ.items() if k.startswith("ODIN_")}))
    assert result.stdout.strip() == "BudgetExceeded", result.stderr[-2000:]


def test_plan_without_credentials_validates_and_says_what_it_needs(tmp_path):
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    result = subprocess.run([sys.executable, "scripts/run.py", "plan", "--target", "aws"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "terraform validate: ok" in result.stderr
    assert "not planned" in result.stderr and "AWS credentials" in result.stderr
    assert "Traceback" not in result.stderr


class _OfflineAws:
    """Just enough of AWS on loopback for a plan of a new stack: STS GetCallerIdentity (the provider checks
    its credentials) and Step Functions' ValidateStateMachineDefinition. Anything else is refused and logged."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415
        from threading import Thread  # noqa: PLC0415

        calls = self.calls = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                target = self.headers.get("X-Amz-Target", "")
                calls.append(target or body.split("&")[0])
                if "Action=GetCallerIdentity" in body:
                    out, kind = (b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                                 b"<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/plan</Arn>"
                                 b"<UserId>AIDAPLAN</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
                                 b"<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>"
                                 b"</GetCallerIdentityResponse>"), "text/xml"
                    self.send_response(200)
                elif target.endswith("ValidateStateMachineDefinition"):
                    out, kind = b'{"result": "OK", "diagnostics": []}', "application/x-amz-json-1.0"
                    self.send_response(200)
                else:
                    out, kind = b'{"__type": "UnknownOperationException"}', "application/x-amz-json-1.0"
                    self.send_response(400)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        Thread(target=self.server.serve_forever, daemon=True).start()


def test_terraform_plan_of_the_aws_stack_with_offline_credentials(tmp_path):
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    aws = _OfflineAws()
    try:
        out = tmp_path / "cdktf.out"
        synth = subprocess.run([sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                               env=terraform.env({"ODIN_PROFILES": "aws", "ODIN_STATE_BACKEND": "local",
                                                  "ODIN_SYNTH_OUT": str(out)}))
        assert synth.returncode == 0, synth.stderr[-2000:]
        stack = out / "stacks" / "odin-aws"
        env = terraform.env({"AWS_ACCESS_KEY_ID": "AKIAOFFLINEPLAN00000", "AWS_SECRET_ACCESS_KEY": "offline",
                             "AWS_ENDPOINT_URL_STS": aws.url, "AWS_ENDPOINT_URL_SFN": aws.url,
                             "AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": ""})
        for args in (["init", "-input=false", "-no-color"], ["plan", "-input=false", "-no-color", "-lock=false"]):
            result = subprocess.run(["terraform", *args], cwd=stack, env=env, capture_output=True, text=True,
                                    timeout=600)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Plan:" in result.stdout and " to add, 0 to change, 0 to destroy" in result.stdout
        assert not [c for c in aws.calls if "GetCallerIdentity" not in c and "ValidateStateMachine" not in c]
    finally:
        aws.server.shutdown()
