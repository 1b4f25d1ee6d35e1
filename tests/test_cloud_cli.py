"""`run --target aws`, `status`, `logs` and `data` against a real Step Functions and S3 API (moto server)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from conftest import BUCKET, ROOT, SAMPLE, odin

from modules import cloud
from runtimes.lambda_adapter import params_from_input
from wildlife import budget
from wildlife.runinput import RunInput

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
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]}
    result = odin("run", "--target", "aws", "--input", str(SAMPLE / "photos"), "--output", str(tmp_path / "out"),
                  "--budget", "25", env=env)
    assert result.returncode == 0, result.stderr
    assert "uploaded 10 photo(s)" in result.stderr and "Result" in result.stderr
    (execution,) = [e for e in sfn.list_executions(stateMachineArn=arn)["executions"]
                    if e["executionArn"] not in before]  # the module's other tests start executions too
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


# Every run option at a value other than its default: (flag, its value or None for a flag, the run input's value)
NON_DEFAULT = {
    "use_spot": ("--no-spot", None, False), "max_images": ("--max-images", "7", 7),
    "max_job_duration": ("--max-job-duration", "86400", 86400.0), "detector": ("--detector", "motion", "motion"),
    "instance_type": ("--instance-type", "g5.xlarge", "g5.xlarge"),
    "weather_days_back": ("--weather-days-back", "2", 2), "weather_provider": ("--weather-provider", "none", "none"),
    "independence_s": ("--independence", "900", 900.0), "sequence_gap_s": ("--sequence-gap", "30", 30.0),
    "events_method": ("--events", "hdbscan", "hdbscan"), "event_gap_s": ("--event-gap", "45", 45.0),
    "conf_threshold": ("--conf-threshold", "0.5", 0.5), "follow_links": ("--follow-links", None, True),
    "priority": ("--priority", "high", "high"),
    "classifier": ("--classifier", "none", "none"), "country": ("--country", "DNK", "DNK"),
    "expected_empty_share": ("--expected-empty-share", "0.5", 0.5), "speed": ("--speed", "fast", "fast"),
    "video_sample": ("--video-sample", "2s", "2s"), "humans": ("--humans", "drop", "drop"),
    "occasion_days": ("--occasion-days", "5", 5),
}


def test_every_run_option_reaches_the_execution_input_and_the_lambdas_params(stack, tmp_path):
    """Regression: the cloud path dropped --sequence-gap, --conf-threshold, --weather-provider, --independence,
    --prices, --instance-type, --events, --event-gap and --follow-links."""
    user_set = set(RunInput.names()) - {"input_uri", "output_uri", "budget_dkk", "target", "work_uri", "emulated",
                                        "prices_uri", "deployments_uri", "project_uri"}
    assert set(NON_DEFAULT) == user_set, "a run option this test does not send"
    env, sfn, arn = stack
    prices = tmp_path / "prices.yaml"
    prices.write_text(Path(budget.DEFAULT_PRICES).read_text())
    deployments = tmp_path / "deployments.csv"
    deployments.write_text("deploymentID,latitude,longitude,timezone\nA,55.7,12.5,Europe/Copenhagen\n")
    project = tmp_path / "project.yaml"
    project.write_text("title: A survey\ncontributors: [{title: A. Person, role: contact}]\n")
    args = [a for flag, value, _ in NON_DEFAULT.values() for a in (flag, value) if a is not None]
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]}
    result = odin("run", "--target", "aws", "--input", str(SAMPLE / "photos"), "--output", str(tmp_path / "out"),
                  "--budget", "25", "--prices", str(prices), "--deployments", str(deployments),
                  "--project", str(project), *args, env=env)
    assert result.returncode == 0, result.stderr
    (execution,) = [e for e in sfn.list_executions(stateMachineArn=arn)["executions"]
                    if e["executionArn"] not in before]
    run_input = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    params = params_from_input(run_input)  # what every Lambda's stage reads
    for key, (_, _, value) in NON_DEFAULT.items():
        assert run_input[key] == value and params[key] == value, key
    for key, name in (("prices_uri", "prices.yaml"), ("deployments_uri", "deployments.csv"),
                      ("project_uri", "project.yaml")):  # uploaded
        assert params[key] == f"s3://{BUCKET}/input/{execution['name']}/{name}", key
    assert params["target"] == "aws"


def test_the_run_commands_options_are_the_run_inputs_fields_with_its_defaults(monkeypatch):
    """The click options and ``RunInput`` are one definition: same names, same defaults."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from run import cli  # noqa: PLC0415 - scripts/ is on the path only here

    options = {p.name: p.default for p in cli.commands["run"].params}
    not_the_runs = {"resume", "checkpoint_every"}  # how this invocation runs, not what the run is
    assert set(options) - not_the_runs <= set(RunInput.names())
    for name, default in options.items():
        if name not in not_the_runs and name not in RunInput.REQUIRED:
            assert default == RunInput.default(name), name


def test_run_on_aws_over_budget_starts_nothing(stack, tmp_path):
    env, sfn, arn = stack
    before = len(sfn.list_executions(stateMachineArn=arn)["executions"])
    result = odin("run", "--target", "aws", "--input", str(SAMPLE / "photos"), "--output", str(tmp_path / "o"),
                  "--budget", "0.001", env=env)
    assert result.returncode == 3 and "Nothing was uploaded or started" in result.stderr
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == before


def test_run_on_aws_uploads_only_the_photos_it_prices(stack, s3_env, tmp_path):
    """Regression: every file under --input was uploaded while the estimate priced only the photos it would
    process (10 photos and a 50 MB video at --max-images 1: "S3 0.00 GB", 53 MB sent)."""
    env, sfn, arn = stack
    _, s3 = s3_env
    photos = tmp_path / "card"
    shutil.copytree(SAMPLE / "photos", photos)
    (photos / "62c200a9" / "MOVI0001.AVI").write_bytes(os.urandom(3_000_000))
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]}
    out = tmp_path / "out"
    result = odin("run", "--target", "aws", "--input", str(photos), "--output", str(out), "--budget", "25",
                  "--max-images", "1", "--detector", "motion", env=env)
    assert result.returncode == 0, result.stderr
    (execution,) = [e for e in sfn.list_executions(stateMachineArn=arn)["executions"]
                    if e["executionArn"] not in before]
    sent = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"input/{execution['name']}/photos/").get("Contents", [])
    assert len(sent) == 1 and sent[0]["Key"].endswith(".JPG")
    listed = {r["relpath"]: r for r in csv.DictReader((out / "not_uploaded.csv").open())}
    assert len(listed) == 10  # the other 9 photos and the video, each with its reason
    assert "beyond --max-images 1" in listed["62c200a9/MOVI0001.AVI"]["reason"]  # a video now, past the limit


def test_not_deployed_says_how_to_deploy(tmp_path):
    result = odin("status", "--target", "aws")
    assert result.returncode == 1 and "scripts/run.py apply --target aws" in result.stderr


def test_batch_cost_from_job_durations():
    jobs = [{"startedAt": 0, "stoppedAt": 1_800_000}, {"startedAt": 1000, "stoppedAt": 1_801_000},
            {"startedAt": 5, "stoppedAt": None}]  # still running: not counted
    hours, dkk = cloud.batch_cost(jobs, usd_per_hour=0.22, usd_to_dkk=6.45)
    assert hours == pytest.approx(1.0) and dkk == pytest.approx(0.22 * 6.45)


def _no_aws(**extra: str) -> dict:
    """This process's environment without any AWS credentials (and no instance metadata to ask)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return dict(env, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull,
                AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="eu-north-1", **extra)


@pytest.mark.parametrize("command", [("list", "s3://odin-nobody/x"), ("download", "s3://odin-nobody/x")])
def test_data_without_credentials_says_how_to_give_them(command, tmp_path):
    folder = (str(tmp_path / "dl"),) if command[0] == "download" else ()
    result = odin("data", *command, *folder, "--target", "aws", env=_no_aws())
    assert result.returncode == 2, result.stderr
    assert "no usable AWS credentials" in result.stderr and "AWS_PROFILE" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_needs_an_s3_uri(tmp_path):
    for command in (("list", str(tmp_path)), ("upload", str(SAMPLE / "photos"), "bucket/prefix"),
                    ("download", "https://example.org/x", str(tmp_path / "dl"))):
        result = odin("data", *command)
        assert result.returncode == 2, result.stderr
        assert "is not an s3:// URI" in result.stderr and "Traceback" not in result.stderr


def test_data_with_no_emulator_running_says_how_to_start_it():
    closed = _no_aws(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    result = odin("data", "list", "s3://odin-data/x", "--target", "localstack", env=closed)
    assert result.returncode == 1, result.stderr
    assert "the service does not answer" in result.stderr and "scripts/localstack.py up" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_on_a_missing_bucket_is_the_users_to_fix(s3_env):
    env, _ = s3_env
    result = odin("data", "list", "s3://odin-no-such-bucket/x", "--target", "aws", env=env)
    assert result.returncode == 2, result.stderr
    assert "NoSuchBucket" in result.stderr and "Traceback" not in result.stderr


def _report(session: str, created: str, status: str = "succeeded", compute_dkk: float = 2.0) -> dict:
    """A run report as an AWS run writes it: no measured cost of its own, an estimate with a compute line."""
    return {"session_id": session, "status": status, "created": created,
            "params": {"target": "aws", "use_spot": True, "instance_type": "g4dn.xlarge"},
            "estimate": {"total_dkk": compute_dkk + 0.5, "lines": [
                {"item": "compute (g4dn.xlarge spot)", "basis": "", "dkk": compute_dkk},
                {"item": "storage", "basis": "", "dkk": 0.5}]},
            "measured": {"wall_time_s": 60.0, "cost_dkk": None}}


def test_cost_report_per_period_sums_the_runs_in_the_bucket(s3_env, tmp_path):
    env, s3 = s3_env
    bucket = "odin-cost-periods"  # its own: other tests' runs land in the shared bucket today
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    runs = [("a1", "2026-10-30T23:30:00+00:00", "succeeded"), ("b2", "2026-11-02T08:00:00+00:00", "succeeded"),
            ("c3", "2026-11-03T09:00:00+01:00", "failed"), ("d4", "2026-11-24T06:00:00+00:00", "succeeded")]
    for session, created, status in runs:
        s3.put_object(Bucket=bucket, Key=f"runs/{session}/run_report.json",
                      Body=json.dumps(_report(session, created, status)).encode())
    for key in ("runs/frames/b2/run_report.json", "runs/crops/b2/0001.jpg", "runs/b2/_run/run_report.json"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")  # frames, crops and work files are no runs
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"bucket": bucket, "state_machine_arn": "arn:aws:states:::x"}))
    env = dict(env, ODIN_STACK_OUTPUTS=str(outputs))

    def table(period: str) -> dict[str, list[str]]:
        result = odin("cost", "report", "--period", period, "--target", "aws", env=env)
        assert result.returncode == 0, result.stderr
        return {line.split()[0]: line.split()[1:6] for line in result.stdout.splitlines()[1:]}

    month = table("month")
    assert month == {"2026-10": ["1", "1", "0.00", "0.00", "2.00"], "2026-11": ["3", "2", "0.00", "0.00", "4.00"]}
    assert list(table("week")) == ["2026-W44", "2026-W45", "2026-W48"]
    assert list(table("day")) == ["2026-10-30", "2026-11-02", "2026-11-03", "2026-11-24"]
    result = odin("cost", "report", "--period", "month", "--target", "aws", env=env)
    assert "(1 without a Stage 1 to price)" in result.stdout and "(2 at estimate" in result.stdout
    wrong = odin("cost", "report", "--target", "aws", env=env)
    assert wrong.returncode == 2 and "--period" in wrong.stderr


def test_cost_by_period_measures_from_batch_jobs_where_batch_still_has_them():
    prices = budget.load_prices(None)
    day = 24 * 3600 * 1000
    reports = [_report("a", "2026-11-02T08:00:00+00:00"), _report("b", "2026-11-05T08:00:00+00:00"),
               _report("c", "2026-11-06T08:00:00+00:00")]
    jobs = {"a": [{"startedAt": 0, "stoppedAt": 3_600_000}], "b": [{"startedAt": day, "stoppedAt": day + 1_800_000}],
            "c": []}  # c: Batch keeps finished jobs only so long
    runs = [(r, cloud.run_cost(r, jobs[r["session_id"]], prices)) for r in reports]
    (week,) = cloud.cost_by_period(runs, "week")
    rate = prices["instances"]["g4dn.xlarge"]["spot"] * prices["usd_to_dkk"]
    assert week["period"] == "2026-W45" and week["instance_hours"] == pytest.approx(1.5)
    assert week["measured_dkk"] == pytest.approx(1.5 * rate)
    assert (week["runs_at_estimate"], week["estimated_dkk"]) == (1, 2.0)  # c, at its compute line, not as measured


class _RacingExecution:
    """Step Functions as AWS pages it (at most 1000 events a page, newest first on request) and as a poller sees
    it while a short execution runs entirely between two of its calls (the race moto's threaded executions hit
    in CI), with a history longer than one page."""

    def __init__(self, states: int):
        self.calls = 0
        self.history_calls = 0
        self.events = [{"id": i + 1, "type": "TaskStateEntered", "timestamp": datetime(2026, 11, 24, tzinfo=UTC),
                        "stateEnteredEventDetails": {"name": f"S{i}"}} for i in range(states)]

    def _ended(self) -> bool:
        self.calls += 1
        return self.calls > 1  # the execution has ended by the second call, whichever it is

    def describe_execution(self, executionArn):
        return {"status": "SUCCEEDED" if self._ended() else "RUNNING", "output": "{}"}

    def get_execution_history(self, executionArn, maxResults=1000, reverseOrder=False, nextToken=None):
        self.history_calls += 1
        events = self.events if self._ended() else []
        events = events[::-1] if reverseOrder else events
        start = int(nextToken or 0)
        more = start + maxResults < len(events)
        return {"events": events[start:start + maxResults], **({"nextToken": str(start + maxResults)} if more else {})}


def test_follow_shows_every_state_of_an_execution_that_ends_between_two_polls():
    """Regression: the history was read before the status, so a run that ended in between was reported done
    without its states (CI: 'Result' missing from a moto run's output); and only its first 1000 events."""
    sfn = _RacingExecution(2500)
    steps = list(cloud.follow(sfn, "arn:x", poll_s=0))
    assert [s["state"] for s in steps[:-1]] == [f"S{i}" for i in range(2500)]
    assert steps[-1]["status"] == "SUCCEEDED"
    assert sfn.history_calls == 3 + 1  # its three pages read once, then one call for the poll that saw it end


def test_following_a_long_history_reads_only_its_newest_page_each_poll():
    sfn = _RacingExecution(2500)
    sfn.calls = 1  # already running with its 2500 events when followed
    assert len(cloud.events_after(sfn, "arn:x", 0)) == 2500 and sfn.history_calls == 3
    sfn.events.append(dict(sfn.events[-1], id=2501, stateEnteredEventDetails={"name": "Result"}))
    assert [e["stateEnteredEventDetails"]["name"] for e in cloud.events_after(sfn, "arn:x", 2500)] == ["Result"]
    assert sfn.history_calls == 4  # one call for the poll after
