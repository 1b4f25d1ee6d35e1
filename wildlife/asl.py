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
MAX_PAYLOAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class Resources:
    """ARNs (or Terraform references to them) the generated machine points at."""

    functions: dict[str, str]  # graph.LAMBDAS key -> Lambda ARN
    job_queue: str
    job_definition: str


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


def _batch_task(stage: Stage, res: Resources, next_state: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {
            "JobName.$": "States.Format('odin-stage1-{}', $$.Execution.Name)",
            "JobQueue": res.job_queue,
            "JobDefinition": res.job_definition,
            "ArrayProperties": {"Size.$": "$.CostEstimation.array_size"},
            "ContainerOverrides": {"Command.$": "$.CostEstimation.stage1_command"},
        },
        "ResultSelector": {"job_id.$": "$.JobId", "results_uri.$": "$$.Execution.Input.output_uri"},
        "ResultPath": f"$.{stage.job_result}",
        "Catch": _catch(stage.name),
        "Next": next_state,
    }


def _fan_out(stage: Stage, arn: str) -> dict[str, Any]:
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
        "MaxConcurrency": 40,
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
    entry = {s.name: s.map_state if s.fan_out else s.name for s in GRAPH}  # where each stage begins
    names = [s.name for s in GRAPH]
    for i, stage in enumerate(GRAPH):
        nxt = entry[names[i + 1]] if i + 1 < len(names) else "Result"
        if stage.fan_out:
            states[stage.map_state] = _fan_out(stage, res.functions[stage.map_state])
        if stage.runs_on == "batch":
            # the containers write one result file per shard; a Lambda summarises them into the payload
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
            "StartAt": entry[names[0]], "States": states}
