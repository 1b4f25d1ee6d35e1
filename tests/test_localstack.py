"""The emulator end to end, as `make up-localstack deploy-local run-local destroy-local down-localstack` runs it.

LocalStack's core starts on 127.0.0.1 in its own Python 3.13 venv; the `localstack` profile is applied with
Terraform; a run over the sample photos succeeds, a run over budget ends in FailBudget with no compute
started; the stack is destroyed without leftovers and the emulator is stopped. Skipped, with the reason,
where the emulator cannot start (no Python 3.13, no package registry) or one already answers on its port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, SAMPLE, odin

from modules import cloud

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EMULATOR = [sys.executable, str(ROOT / "scripts" / "localstack.py")]
KW = {"endpoint_url": "http://127.0.0.1:4566", "region_name": "eu-north-1", "aws_access_key_id": "test",
      "aws_secret_access_key": "test"}


def _status() -> dict:
    out = subprocess.run([*EMULATOR, "status"], capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def emulator():
    if _status()["ready"]:
        pytest.skip("an emulator already answers on 127.0.0.1:4566 (yours?); this test starts and destroys its "
                    "own: stop it with `make down-localstack` first")
    up = subprocess.run([*EMULATOR, "up"], capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        reason = (up.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"LocalStack could not start: {reason}")
        pytest.skip(f"LocalStack could not start here: {reason}")
    pid = _status()["pid"]
    try:
        yield pid
    finally:
        down = subprocess.run([*EMULATOR, "down"], capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        status = _status()
        assert not status["ready"] and status["pid"] is None, "the emulator is still running after down"


def _history(sfn, arn: str) -> list[dict]:
    return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def _entered(events: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def _session(stdout: str) -> str:
    return next(w.rsplit(":", 1)[1] for w in stdout.split() if ":execution:" in w)


def test_deploy_run_fail_budget_destroy(emulator, tmp_path, monkeypatch):
    t0 = time.monotonic()
    # its own synth folder: other tests synthesise into cdktf.out meanwhile
    monkeypatch.setenv("ODIN_SYNTH_OUT", str(tmp_path / "cdktf.out"))
    env = dict(os.environ)
    applied = odin("apply", "--target", "localstack", timeout=600, env=env)
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    outputs = cloud.stack_outputs("localstack")
    bucket, machine = outputs["bucket"], outputs["state_machine_arn"]
    s3, sfn = boto3.client("s3", **KW), boto3.client("stepfunctions", **KW)

    # the success path: photos uploaded, the real state machine runs to Succeed, outputs come back
    out = tmp_path / "out"
    ran = odin("run", "--target", "localstack", "--input", str(SAMPLE / "photos"), "--deployments",
               str(SAMPLE / "deployments.csv"), "--output", str(out), "--budget", "25", timeout=300, env=env)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    session = _session(ran.stdout + ran.stderr)
    execution = sfn.describe_execution(executionArn=f"{machine.replace(':stateMachine:', ':execution:')}:{session}")
    assert execution["status"] == "SUCCEEDED"
    result = json.loads(execution["output"])
    assert result["session_id"] == session
    assert set(result["final_results"]) >= {"parquet_uri", "report_uri", "weather_uri", "files_created"}
    entered = _entered(_history(sfn, execution["executionArn"]))
    for state in ("GuardBudget", "Stage0ExifShards", "Stage0Exif", "CostEstimation", "Stage1Detect",
                  "Stage1DetectSummary", "Stage2Events", "WeatherEnrichment", "WriteOutputs", "Succeed"):
        assert state in entered, f"{state} was never entered: {entered}"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/{session}/")["Contents"]}
    for name in ("images.parquet", "detections.parquet", "megadetector.json", "report.html", "run_report.json",
                 "camtrap-dp/datapackage.json"):
        assert f"runs/{session}/{name}" in keys
    photos = sorted(p.relative_to(SAMPLE / "photos").as_posix() for p in (SAMPLE / "photos").rglob("*.JPG"))
    images = pq.read_table(out / "images.parquet").to_pylist()
    assert sorted(r["relpath"] for r in images) == photos  # every photo, exactly once
    report = json.loads((out / "run_report.json").read_text())
    assert report["emulated"]["services"] == ["lambda", "batch"]  # labelled: nothing ran on AWS Lambda/Batch
    assert report["detector"]["name"] == "odin-motion-baseline"  # no weights here: the report says which ran
    assert 'id="emulated"' in (out / "report.html").read_text()

    # the budget path: FailBudget, and nothing after the guard started
    refused = odin("run", "--target", "localstack", "--input", str(SAMPLE / "photos"), "--output",
                   str(tmp_path / "refused"), "--budget", "0.001", timeout=300, env=env)
    assert refused.returncode == 3, refused.stdout[-3000:] + refused.stderr[-3000:]
    session2 = _session(refused.stdout + refused.stderr)
    arn2 = f"{machine.replace(':stateMachine:', ':execution:')}:{session2}"
    failed = sfn.describe_execution(executionArn=arn2)
    assert failed["status"] == "FAILED" and failed["error"] == "BudgetExceeded"
    entered = _entered(_history(sfn, arn2))
    assert entered == ["GuardBudget", "FailBudget"], entered
    work = s3.list_objects_v2(Bucket=bucket, Prefix=f"tmp/{session2}/").get("Contents", [])
    started = [o["Key"] for o in work if o["Key"].split("/")[2].split(".")[0] in ("stage0", "media", "stage1")]
    assert not started, f"work began although the guard refused the run: {started}"

    # destroy leaves nothing behind
    destroyed = odin("destroy", "--target", "localstack", timeout=600, env=env)
    assert destroyed.returncode == 0, destroyed.stdout[-3000:] + destroyed.stderr[-3000:]
    assert boto3.client("s3", **KW).list_buckets()["Buckets"] == []
    assert sfn.list_state_machines()["stateMachines"] == []
    assert [v for v in boto3.client("ec2", **KW).describe_vpcs()["Vpcs"] if not v.get("IsDefault")] == []
    assert boto3.client("iam", **KW).list_roles()["Roles"] == []
    assert boto3.client("sns", **KW).list_topics()["Topics"] == []
    assert boto3.client("logs", **KW).describe_log_groups()["logGroups"] == []
    assert boto3.client("cloudwatch", **KW).describe_alarms()["MetricAlarms"] == []
    print(f"LocalStack: apply, two runs and destroy in {time.monotonic() - t0:.0f} s")
