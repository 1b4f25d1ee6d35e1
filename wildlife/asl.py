"""The Step Functions state machine, generated from the same stage graph the local runner walks.

Every stage of ``wildlife.graph.GRAPH`` becomes one Task: a Lambda invocation for ``runs_on="lambda"``, an
AWS Batch array job (``batch:submitJob.sync``) for ``runs_on="batch"``. Each result lands under the stage's
name (``ResultPath: $.<Stage>``), exactly as in the local runner's state, and holds URIs and counts only.
BudgetExceeded from a budget stage ends in ``FailBudget`` before any compute starts; any other error goes
to ``WriteFailureReport`` and then ``Failed``. The execution input is the original design's JSON
(``input_uri``, ``output_uri``, ``budget_dkk``, ...); its output is ``{session_id, final_results}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wildlife.graph import BUDGET_STAGES, FAILURE_REPORT, GRAPH, Stage

LAMBDA_RETRY = {
    "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                    "Lambda.TooManyRequestsException"],
    "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2.0, "JitterStrategy": "FULL",
}
# Stage 1's submitJob is retried on Batch's API errors only (throttling, a server fault: nothing ran). A job
# that ran and failed ends the task with States.TaskFailed, which is not retried here: the job definition's
# retryStrategy already retried it once if its host went away (modules.compute), and bad input never is.
BATCH_API_RETRY = {"ErrorEquals": ["Batch.AWSBatchException", "Batch.ServerException"],
                   "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2.0}
# Job queues over the same compute environments, by the run's ``priority`` (``run --priority``); the value is
# the queue's scheduling priority (higher first when jobs wait for capacity)
QUEUE_PRIORITIES = {"high": 100, "normal": 50, "low": 1}
DEFAULT_PRIORITY = "normal"


def queue_name(stack: str, priority: str) -> str:
    return f"{stack}-detect" if priority == DEFAULT_PRIORITY else f"{stack}-detect-{priority}"


@dataclass(frozen=True)
class Resources:
    """ARNs (or Terraform references to them) the generated machine points at."""

    functions: dict[str, str]  # graph.LAMBDAS key -> Lambda ARN
    job_queues: dict[str, str]  # priority (QUEUE_PRIORITIES) -> job queue ARN
    job_definition: str
    timeout_s: int = 2 * 3600  # the whole execution's bound (the profile's workflow.timeout_s)
    max_parallel: int = 40  # the Distributed Map's concurrency (the profile's compute.max_parallel_jobs)


def _catch(stage: str) -> list[dict[str, Any]]:
    catches = []
    if stage in BUDGET_STAGES:
        catches.append({"ErrorEquals": ["BudgetExceeded"], "ResultPath": "$.error", "Next": "FailBudget"})
    catches.append({"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": FAILURE_REPORT})
    return catches


def _lambda_task(stage: str, arn: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": arn, "Payload": {"state.$": "$", "session_id.$": "$$.Execution.Name"}},
        "ResultSelector": {"payload.$": "$.Payload"},
        "ResultPath": f"$.{stage}",
        "Retry": [LAMBDA_RETRY],
        "Catch": _catch(stage),
        "Next": f"{stage}Unwrap",
    }


def _unwrap(stage: str, next_state: str) -> dict[str, Any]:
    """Lift the Lambda's payload into place: ``$.<Stage>`` holds the stage's own dict, as locally."""
    return {"Type": "Pass", "InputPath": f"$.{stage}.payload", "ResultPath": f"$.{stage}", "Next": next_state}


def _queue_choice(stage: str, res: Resources) -> dict[str, Any]:
    """The run's ``priority`` (execution input) -> ``$.<Stage>Queue``; no or an unknown priority: normal."""
    return {"Type": "Choice", "Default": f"{stage}Queue{DEFAULT_PRIORITY.title()}",
            "Choices": [{"And": [{"Variable": "$.priority", "IsPresent": True},
                                 {"Variable": "$.priority", "IsString": True},
                                 {"Variable": "$.priority", "StringEquals": p}], "Next": f"{stage}Queue{p.title()}"}
                        for p in QUEUE_PRIORITIES if p != DEFAULT_PRIORITY]}


def _queue_pass(stage: str, arn: str) -> dict[str, Any]:
    return {"Type": "Pass", "Result": arn, "ResultPath": f"$.{stage}Queue", "Next": stage}


def _batch_task(stage: Stage, res: Resources, next_state: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        # bounded: the run's --max-job-duration, else the design's 2 hours (CostEstimation works it out)
        "TimeoutSecondsPath": "$.CostEstimation.stage1_timeout_s",
        "Parameters": {
            "JobName.$": "States.Format('odin-stage1-{}', $$.Execution.Name)",
            "JobQueue.$": f"$.{stage.name}Queue",
            "JobDefinition": res.job_definition,
            "ArrayProperties": {"Size.$": "$.CostEstimation.array_size"},
            "ContainerOverrides": {"Command.$": "$.CostEstimation.stage1_command"},
        },
        "ResultSelector": {"job_id.$": "$.JobId", "results_uri.$": "$$.Execution.Input.output_uri"},
        "ResultPath": f"$.{stage.job_result}",
        "Retry": [BATCH_API_RETRY],
        "Catch": _catch(stage.name),
        "Next": next_state,
    }


def _fan_out(stage: Stage, arn: str, max_parallel: int) -> dict[str, Any]:
    """A Distributed Map over the stage's shard list (written by GuardBudget), one Lambda per shard.

    Child executions keep their own history, so a million photos stay far from the 25,000-event limit;
    their results are dropped (``ResultPath: null``): the shards write Parquet, the stage then merges it.
    No failure is tolerated; that is the default, so ``ToleratedFailurePercentage`` is left out (LocalStack's
    parser refuses the integer 0 there).
    """
    return {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                       "Parameters": {"Bucket.$": "$.GuardBudget.shards_bucket", "Key.$": "$.GuardBudget.shards_key"}},
        "ItemSelector": {"shard.$": "$$.Map.Item.Value.shard", "run.$": "$", "session_id.$": "$$.Execution.Name"},
        "MaxConcurrency": max_parallel,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": stage.shard_task,
            "States": {stage.shard_task: {
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn, "Payload": {
                    "state.$": "$.run", "shard.$": "$.shard", "session_id.$": "$.session_id"}},
                "ResultSelector": {"shard.$": "$.Payload.shard"},
                "Retry": [LAMBDA_RETRY], "End": True}},
        },
        "ResultPath": None,
        "Catch": _catch(stage.name),
        "Next": stage.name,
    }


def build(res: Resources) -> dict[str, Any]:
    states: dict[str, Any] = {}
    entry = {s.name: s.map_state if s.fan_out else f"{s.name}Queue" if s.runs_on == "batch" else s.name
             for s in GRAPH}  # where each stage begins
    names = [s.name for s in GRAPH]
    for i, stage in enumerate(GRAPH):
        nxt = entry[names[i + 1]] if i + 1 < len(names) else "Result"
        if stage.fan_out:
            states[stage.map_state] = _fan_out(stage, res.functions[stage.map_state], res.max_parallel)
        if stage.runs_on == "batch":
            # the containers write one result file per shard; a Lambda summarises them into the payload
            states[f"{stage.name}Queue"] = _queue_choice(stage.name, res)
            for priority, arn in res.job_queues.items():
                states[f"{stage.name}Queue{priority.title()}"] = _queue_pass(stage.name, arn)
            states[stage.name] = _batch_task(stage, res, stage.summary_task)
            states[stage.summary_task] = _lambda_task(stage.name, res.functions[stage.name])
        else:
            states[stage.name] = _lambda_task(stage.name, res.functions[stage.name])
        states[f"{stage.name}Unwrap"] = _unwrap(stage.name, nxt)
    states["Result"] = {"Type": "Pass",
                        "Parameters": {"session_id.$": "$$.Execution.Name", "final_results.$": "$.WriteOutputs"},
                        "Next": "Succeed"}
    states["Succeed"] = {"Type": "Succeed"}
    states["FailBudget"] = {"Type": "Fail", "Error": "BudgetExceeded",
                            "Cause": "The estimate is over the run's budget; nothing was started."}
    states[FAILURE_REPORT] = {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": res.functions[FAILURE_REPORT],
                       "Payload": {"state.$": "$", "session_id.$": "$$.Execution.Name"}},
        "Retry": [LAMBDA_RETRY], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}], "Next": "Failed"}
    states["Failed"] = {"Type": "Fail", "Error": "RunFailed", "Cause": "A stage failed; see the failure report."}
    return {"Comment": "Odin camera-trap pipeline, generated from wildlife.graph.GRAPH",
            "StartAt": entry[names[0]], "TimeoutSeconds": res.timeout_s, "States": states}
