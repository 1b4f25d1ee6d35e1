"""The monthly stop (``wildlife.monthly_stop``): a Lambda subscribed to the alarm topic, where AWS Budgets
publishes the stack's budget at its alert threshold and at 100%, and called on the 1st of each month (UTC) by
an EventBridge schedule to lift last month's stop.

Its role may: scale and disable/enable the stack's own compute environments (``batch:UpdateComputeEnvironment``
on their ARNs), read and overwrite the stop marker (``modules.access.MONTHLY_STOP_IO``), write its own log
group and traces. SNS and EventBridge may invoke it only from this topic and this rule.
"""

from __future__ import annotations

import json

from cdktn import TerraformResourceLifecycle
from cdktn_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktn_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktn_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.lambda_function import LambdaFunction, LambdaFunctionEnvironment
from cdktn_provider_aws.lambda_permission import LambdaPermission
from cdktn_provider_aws.s3_object import S3Object
from cdktn_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from modules.access import MONTHLY_STOP_IO, document, s3_statements, xray_statement
from modules.compute import assume
from modules.functions import accept_function, accept_log_group
from wildlife import monthly_stop

FOLDER = "monthly_stop"  # functions/monthly_stop/handler.py
SCHEDULE = "cron(5 0 1 * ? *)"  # 00:05 UTC on the 1st: a new budget month


class MonthlyStop(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, cfg: dict, code, bucket_arn: str,
                 bucket_name: str, environment_arns: list[str], sizes: dict[str, dict[str, int]], topic_arn: str,
                 log_key_arn: str, tags: dict[str, str]):
        super().__init__(scope, id)
        fn_name = f"{name}-monthly-stop"
        logs = CloudwatchLogGroup(self, "logs", name=f"/aws/lambda/{fn_name}",
                                  retention_in_days=cfg["log_retention_days"], kms_key_id=log_key_arn, tags=tags)
        accept_log_group(logs)
        role = IamRole(self, "role", name_prefix="odin-monthly-stop-",
                       assume_role_policy=assume("lambda.amazonaws.com"), tags=tags)
        IamRolePolicy(self, "policy", role=role.id, policy=json.dumps(document(
            {"Sid": "StopAndResumeOwnCompute", "Effect": "Allow", "Action": "batch:UpdateComputeEnvironment",
             "Resource": environment_arns},
            *s3_statements(bucket_arn, MONTHLY_STOP_IO),
            {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": f"{logs.arn}:*"},
            xray_statement())))
        self.function = LambdaFunction(
            self, "function", function_name=fn_name, role=role.arn, **code(FOLDER), memory_size=256, timeout=60,
            architectures=["x86_64"], reserved_concurrent_executions=1,  # one stop or resume at a time
            environment=LambdaFunctionEnvironment(variables={
                "ODIN_BUCKET": bucket_name, "ODIN_BUDGET_NAME": monthly_stop.budget_name(name),
                "ODIN_COMPUTE_ENVIRONMENTS": json.dumps(sizes, sort_keys=True), "ODIN_NO_PROGRESS": "1"}),
            tracing_config={"mode": "Active"}, depends_on=[logs], tags=tags)
        accept_function(self.function, cfg, why_no_dlq="SNS and EventBridge invoke it asynchronously and Lambda "
                        "retries twice; the budget notification also reaches the topic's people, and "
                        "`scripts/run.py budget resume` or the next notification redo its one idempotent step")
        SnsTopicSubscription(self, "subscription", topic_arn=topic_arn, protocol="lambda",
                             endpoint=self.function.arn)
        LambdaPermission(self, "from-topic", action="lambda:InvokeFunction", function_name=self.function.function_name,
                         principal="sns.amazonaws.com", source_arn=topic_arn)
        # The marker exists from the first deploy on, so GuardBudget's read of it finds an object: a role with
        # prefix-conditioned ListBucket may get AccessDenied, not NoSuchKey, for a key that is missing. Terraform
        # writes it once and never again (ignore_changes): an apply during a stopped month keeps the stop.
        self.marker = S3Object(
            self, "marker", bucket=bucket_name, key=monthly_stop.MARKER_KEY, content_type="application/json",
            content=json.dumps({"stopped": False, "note": "written at deploy; the monthly stop overwrites it"}),
            lifecycle=TerraformResourceLifecycle(ignore_changes=["content", "content_type", "etag"]), tags=tags)
        rule = CloudwatchEventRule(self, "new-month", name=f"{name}-monthly-resume", schedule_expression=SCHEDULE,
                                   tags=tags)
        CloudwatchEventTarget(self, "new-month-resume", rule=rule.name, arn=self.function.arn,
                              input=json.dumps({"action": "resume"}))
        LambdaPermission(self, "from-schedule", action="lambda:InvokeFunction",
                         function_name=self.function.function_name, principal="events.amazonaws.com",
                         source_arn=rule.arn)
