"""The state machine, its role and its execution log; the definition comes from ``wildlife.asl``."""

from __future__ import annotations

import json

from cdktn_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.sfn_state_machine import SfnStateMachine, SfnStateMachineLoggingConfiguration
from constructs import Construct

from modules.compute import assume
from wildlife import asl


class Workflow(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, resources: asl.Resources, log_retention_days: int,
                 tags: dict[str, str]):
        super().__init__(scope, id)
        self.definition = asl.build(resources)
        logs = CloudwatchLogGroup(self, "logs", name=f"/aws/vendedlogs/states/{name}",
                                  retention_in_days=log_retention_days, tags=tags)
        role = IamRole(self, "role", name_prefix="odin-states-", assume_role_policy=assume("states.amazonaws.com"),
                       tags=tags)
        IamRolePolicy(self, "policy", role=role.id, policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "InvokeStages", "Effect": "Allow", "Action": "lambda:InvokeFunction",
             "Resource": sorted(set(resources.functions.values()))},
            {"Sid": "RunDetection", "Effect": "Allow", "Action": ["batch:SubmitJob"],
             "Resource": [resources.job_queue, resources.job_definition]},
            {"Sid": "FollowDetection", "Effect": "Allow", "Action": ["batch:DescribeJobs", "batch:TerminateJob"],
             "Resource": "*"},
            {"Sid": "SyncIntegration", "Effect": "Allow",
             "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
             "Resource": "arn:aws:events:*:*:rule/StepFunctionsGetEventsForBatchJobsRule"},
            {"Sid": "ExecutionLogs", "Effect": "Allow", "Resource": "*", "Action": [
                "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups"]}]}))
        self.machine = SfnStateMachine(
            self, "machine", name=name, role_arn=role.arn, definition=json.dumps(self.definition),
            type="STANDARD", logging_configuration=SfnStateMachineLoggingConfiguration(
                log_destination=f"{logs.arn}:*", include_execution_data=True, level="ALL"),
            tracing_configuration={"enabled": True}, tags=tags)
