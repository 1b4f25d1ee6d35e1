"""A run on an emulator that has no Lambda and no Batch: this host stands in for both, and the emulator's
state machine replays their answers through Step Functions' mocked service integrations.

LocalStack's free core runs S3, IAM, Step Functions, Logs and SNS, but not Lambda (without Docker) nor
Batch. So for ``--target localstack`` the host first plays every task exactly as the state machine would
send it: each Lambda is ``runtimes.lambda_adapter.handle`` with the event the ASL builds (the whole state under
``state``, the execution name as ``session_id``, one call per Distributed Map item), and the Batch array job
is the detector container's entry point (``runtimes.batch``) once per array index. They read and write the
emulator's S3. What each returned (or raised) becomes that task's mocked response (``SFN_MOCK_CONFIG``),
and the real state machine then runs over it: its paths, Catch clauses, ``FailBudget``, Distributed Map
and final output are the deployed ones. The run input carries ``emulated``, which the run report and
report.html show, so no output pretends a Lambda or a Batch job ran on AWS.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtimes import batch, lambda_adapter
from wildlife import fs
from wildlife.budget import BudgetExceeded
from wildlife.graph import BUDGET_STAGES, FAILURE_REPORT, GRAPH

LABEL = {"services": ["lambda", "batch"],
         "how": "LocalStack emulated S3, IAM, Step Functions, Logs and SNS; the Lambda and AWS Batch tasks "
                "ran on the host that started the run (Stage 1 with the detector named in the report), "
                "and the state machine replayed their results through mocked service integrations."}
KEEP_TEST_CASES = 20  # older sessions' mocks are dropped from the mock file


def _lambda(payload: dict[str, Any]) -> dict[str, Any]:
    return {"Return": {"Payload": payload, "StatusCode": 200, "ExecutedVersion": "$LATEST"}}


def _throw(exc: BaseException) -> dict[str, Any]:
    return {"Throw": {"Error": type(exc).__name__, "Cause": str(exc)[:30000]}}


@contextlib.contextmanager
def _array_child(index: int, size: int) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE")}
    os.environ.update(AWS_BATCH_JOB_ARRAY_INDEX=str(index), AWS_BATCH_JOB_ARRAY_SIZE=str(size))
    try:
        yield
    finally:
        for key, value in old.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def _batch_array_job(state: dict[str, Any], session: str) -> dict[str, Any]:
    """The Batch task: the container's command once per array index; its mocked DescribeJobs answer."""
    estimate = state["CostEstimation"]
    size = int(estimate["array_size"])
    for index in range(size):
        with _array_child(index, size), contextlib.redirect_stdout(io.StringIO()):  # its log line, not ours
            code = batch.main(list(estimate["stage1_command"]))
        if code != 0:
            raise RuntimeError(f"the detector container (array index {index}) exited {code}")
    job_id = f"emulated-on-host-{session}"
    return {"Return": {"JobId": job_id, "JobName": f"odin-stage1-{session}", "Status": "SUCCEEDED",
                       "ArrayProperties": {"Size": size}}}


def stand_in(run_input: dict[str, Any], session: str) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """Play the run's Lambda and Batch tasks here. Returns the mocked responses by task state name (in
    invocation order) and the state the machine will hold at the end (``error`` set when a stage failed)."""
    state: dict[str, Any] = dict(run_input)
    mocks: dict[str, list[dict]] = {}
    for stage in GRAPH:
        task = stage.name
        try:
            if stage.fan_out:
                task = stage.shard_task
                g = state["GuardBudget"]
                items = fs.read_json(f"s3://{g['shards_bucket']}/{g['shards_key']}")
                mocks[task] = [_lambda(lambda_adapter.handle(stage.name, {"state": state, "shard": item["shard"],
                                                                          "session_id": session},
                                                             function=stage.fan_out))
                               for item in items]
                task = stage.name
            if stage.runs_on == "batch":
                mocks[task] = [_batch_array_job(state, session)]
                state[stage.job_result] = {"job_id": mocks[task][0]["Return"]["JobId"],
                                       "results_uri": run_input["output_uri"]}
                task = stage.summary_task
                payload = lambda_adapter.handle(stage.name, {"state": state, "session_id": session},
                                                function=stage.collect)
            else:
                payload = lambda_adapter.handle(stage.name, {"state": state, "session_id": session})
        except Exception as exc:  # noqa: BLE001 - every error becomes the task's answer, as on AWS
            mocks[task] = [_throw(exc)]
            state["error"] = {"Error": type(exc).__name__, "Cause": str(exc)}
            if not (isinstance(exc, BudgetExceeded) and stage.name in BUDGET_STAGES):
                report = lambda_adapter.failure_report({"state": state, "session_id": session})
                mocks[FAILURE_REPORT] = [_lambda(report)]
            return mocks, state
        mocks[task] = [_lambda(payload)]
        state[stage.name] = payload
    return mocks, state


def write_mock_config(path: Path, machine_name: str, session: str, mocks: dict[str, list[dict]]) -> str:
    """Add the session's test case to the mock file; returns the ARN suffix that selects it (``#<case>``)."""
    config = json.loads(path.read_text()) if path.is_file() else {}
    machines = config.setdefault("StateMachines", {})
    responses = config.setdefault("MockedResponses", {})
    cases = machines.setdefault(machine_name, {}).setdefault("TestCases", {})
    cases[session] = {task: f"{session}:{task}" for task in mocks}
    for task, answers in mocks.items():
        responses[f"{session}:{task}"] = {str(i): answer for i, answer in enumerate(answers)}
    for old in list(cases)[:-KEEP_TEST_CASES]:
        for name in cases.pop(old).values():
            responses.pop(name, None)
    previous = path.stat().st_mtime if path.exists() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config))
    os.replace(tmp, path)
    stamp = max(time.time(), previous + 1)  # the emulator reloads the file when its whole-second mtime changes
    os.utime(path, (stamp, stamp))
    return f"#{session}"
