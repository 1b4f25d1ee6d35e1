"""The state machine, its role and its execution log; the definition comes from ``wildlife.asl``.

The role may: invoke the stack's functions; submit Stage 1 to the stack's queues and job definition, and stop
and follow those jobs; manage the one EventBridge rule ``submitJob.sync`` uses; read the Stage 0 shard list
its Distributed Map iterates; start and follow its own child executions; deliver its execution log; trace.
"""

from __future__ import annotations

import json

from cdktn_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktn_provider_aws.cloudwatch_log_resource_policy import CloudwatchLogResourcePolicy
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.sfn_state_machine import SfnStateMachine, SfnStateMachineLoggingConfiguration
from constructs import Construct

from modules.access import document, work
from modules.compute import assume
from modules.functions import accept_log_group
from wildlife import asl

SYNC_RULE = "StepFunctionsGetEventsForBatchJobsRule"  # the managed rule Step Functions creates for .sync jobs


class Workflow(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, region: str, account: str, bucket_arn: str,
                 log_key_arn: str, resources: asl.Resources, log_retention_days: int, tags: dict[str, str]):
        super().__init__(scope, id)
        self.definition = asl.build(resources)
        logs = CloudwatchLogGroup(self, "logs", name=f"/aws/vendedlogs/states/{name}",
                                  retention_in_days=log_retention_days, kms_key_id=log_key_arn, tags=tags)
        accept_log_group(logs)
        # the log delivery's resource policy, made here so the role needs no logs:PutResourcePolicy
        delivery = CloudwatchLogResourcePolicy(self, "log-delivery", policy_name=f"{name}-states-log-delivery",
                                               policy_document=json.dumps(document(
            {"Sid": "StatesLogDelivery", "Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"},
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": f"{logs.arn}:*",
             "Condition": {"StringEquals": {"aws:SourceAccount": account},
                           "ArnLike": {"aws:SourceArn": f"arn:aws:logs:{region}:{account}:*"}}})))
        role = IamRole(self, "role", name_prefix="odin-states-", assume_role_policy=assume("states.amazonaws.com"),
                       tags=tags)
        logging = IamRolePolicy(self, "logging", role=role.id, policy=json.dumps(document(
            {"Sid": "ExecutionLogs", "Effect": "Allow", "Resource": "*", "Action": [
                "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"]},
            {"Sid": "Tracing", "Effect": "Allow", "Resource": "*", "Action": [
                "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                "xray:GetSamplingTargets"]})))
        self.machine = SfnStateMachine(
            self, "machine", name=name, role_arn=role.arn, definition=json.dumps(self.definition),
            type="STANDARD", logging_configuration=SfnStateMachineLoggingConfiguration(
                log_destination=f"{logs.arn}:*", include_execution_data=True, level="ALL"),
            tracing_configuration={"enabled": True}, depends_on=[logging, delivery], tags=tags)
        executions = f"arn:aws:states:{region}:{account}:execution:{name}/*"  # its Distributed Map's children
        IamRolePolicy(self, "policy", role=role.id, policy=json.dumps(document(
            {"Sid": "InvokeStages", "Effect": "Allow", "Action": "lambda:InvokeFunction",
             "Resource": sorted(set(resources.functions.values()))},
            {"Sid": "RunDetection", "Effect": "Allow", "Action": "batch:SubmitJob",
             "Resource": [*resources.job_queues.values(), resources.job_definition]},
            {"Sid": "StopDetection", "Effect": "Allow", "Action": "batch:TerminateJob",
             "Resource": f"arn:aws:batch:{region}:{account}:job/*"},
            {"Sid": "FollowDetection", "Effect": "Allow", "Action": "batch:DescribeJobs", "Resource": "*"},
            {"Sid": "SyncIntegration", "Effect": "Allow",
             "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
             "Resource": f"arn:aws:events:{region}:{account}:rule/{SYNC_RULE}"},
            {"Sid": "ReadShardList", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"{bucket_arn}/{work('stage0-shards.json')}"},
            {"Sid": "RunOwnChildren", "Effect": "Allow", "Action": "states:StartExecution",
             "Resource": self.machine.arn},
            {"Sid": "FollowOwnChildren", "Effect": "Allow",
             "Action": ["states:DescribeExecution", "states:StopExecution"], "Resource": executions})))
