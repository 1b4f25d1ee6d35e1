"""moto server in this process, with the gaps that stop the full AWS stack filled in (see ../shared/EMULATORS.md).

Each patch answers one call that Terraform's AWS provider 5.100.0 or Step Functions makes and moto 5.2.5 lacks;
without them Terraform retries for minutes or an execution fails on moto, not on our stack:
- Step Functions: ValidateStateMachineDefinition, ListStateMachineVersions (asked on create and read);
- the optimised ``batch:submitJob.sync`` integration: moto's parameter and response normalisation is a no-op,
  so ``JobName`` never becomes boto's ``jobName`` (and ``jobId`` never ``JobId``);
- Budgets: DescribeSubscribersForNotification and the tag calls (the provider reads both back);
- IAM: AWS's managed policies (Batch's service role attaches one).
Executions really run (``stepfunctions.execute_state_machine``); Lambda answers come from moto's queue of
results, Batch jobs succeed when submitted.
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests
from moto.budgets import responses as budgets_responses
from moto.budgets.models import budgets_backends
from moto.core.config import default_user_config
from moto.core.responses import ActionResult
from moto.server import ThreadedMotoServer
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_batch


def _rekey(value: Any, case) -> None:
    """Rename keys in place, all the way down: callers keep references to the nested dicts."""
    if isinstance(value, dict):
        for key in list(value):
            item = value.pop(key)
            _rekey(item, case)
            value[case(key)] = item
    elif isinstance(value, list):
        for item in value:
            _rekey(item, case)


def _in_place(case):
    def normalise(self, *args, **kwargs):  # called as (parameters, ...) and as (response=..., ...)
        _rekey(args[0] if args else kwargs.get("parameters", kwargs.get("response")), case)
    return normalise


def _subscribers(self) -> str:
    budget = budgets_backends[self.current_account]["global"].budgets[self._get_param("AccountId")][
        self._get_param("BudgetName")]
    wanted = self._get_param("Notification")
    for notification in budget.notifications:
        if all(notification.details.get(k) == v for k, v in wanted.items() if k in notification.details):
            return json.dumps({"Subscribers": notification.subscribers})
    return json.dumps({"Subscribers": []})


def patch() -> None:
    sfn_responses.StepFunctionResponse.validate_state_machine_definition = \
        lambda self: ActionResult({"result": "OK", "diagnostics": []})
    sfn_responses.StepFunctionResponse.list_state_machine_versions = \
        lambda self: ActionResult({"stateMachineVersions": []})
    batch = state_task_service_batch.StateTaskServiceBatch
    batch._normalise_parameters = _in_place(lambda k: k[:1].lower() + k[1:])
    batch._normalise_response = _in_place(lambda k: k[:1].upper() + k[1:])
    budgets_responses.BudgetsResponse.describe_subscribers_for_notification = _subscribers
    budgets_responses.BudgetsResponse.list_tags_for_resource = lambda self: json.dumps({"ResourceTags": []})
    budgets_responses.BudgetsResponse.tag_resource = lambda self: "{}"
    budgets_responses.BudgetsResponse.untag_resource = lambda self: "{}"
    default_user_config["iam"]["load_aws_managed_policies"] = True


def start(port: int) -> ThreadedMotoServer:
    """The server on ``port``; its Step Functions interpreter calls the other services there too (MOTO_PORT)."""
    os.environ["MOTO_PORT"] = str(port)
    patch()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    requests.post(f"http://127.0.0.1:{port}/moto-api/config", timeout=10, json={
        "lambda": {"use_docker": False}, "batch": {"use_docker": False},
        "stepfunctions": {"execute_state_machine": True}})
    return server


def queue_lambda_result(port: int, payload: dict[str, Any]) -> None:
    """The next Lambda invocation (any function) returns ``payload``."""
    requests.post(f"http://127.0.0.1:{port}/moto-api/static/lambda-simple/response", timeout=10,
                  json={"results": [json.dumps(payload)], "region": "eu-north-1"}).raise_for_status()
