"""Alarms to one SNS topic: failed or timed-out runs, failed Batch jobs; and a monthly AWS budget at 80 %."""

from __future__ import annotations

import json

from cdktn_provider_aws.budgets_budget import BudgetsBudget, BudgetsBudgetNotification
from cdktn_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktn_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktn_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktn_provider_aws.sns_topic import SnsTopic
from cdktn_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktn_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, cfg: dict, state_machine_arn: str,
                 with_batch: bool, with_budget: bool, usd_to_dkk: float, tags: dict[str, str]):
        super().__init__(scope, id)
        self.topic = SnsTopic(self, "alarms", name=f"{name}-alarms", kms_master_key_id="alias/aws/sns", tags=tags)
        if cfg.get("alarm_email"):
            SnsTopicSubscription(self, "email", topic_arn=self.topic.arn, protocol="email",
                                 endpoint=cfg["alarm_email"])
        for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
            CloudwatchMetricAlarm(
                self, f"alarm-{metric}", alarm_name=f"{name}-{metric}", namespace="AWS/States",
                metric_name=metric, dimensions={"StateMachineArn": state_machine_arn}, statistic="Sum",
                period=300, evaluation_periods=1, threshold=1, comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching", alarm_actions=[self.topic.arn], tags=tags)
        if with_batch:
            rule = CloudwatchEventRule(self, "batch-failed", name=f"{name}-batch-job-failed", event_pattern=json.dumps(
                {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"],
                 "detail": {"status": ["FAILED"], "jobName": [{"prefix": "odin-"}]}}), tags=tags)
            CloudwatchEventTarget(self, "batch-failed-to-sns", rule=rule.name, arn=self.topic.arn)
            SnsTopicPolicy(self, "events-may-publish", arn=self.topic.arn, policy=json.dumps({
                "Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish",
                     "Resource": self.topic.arn}]}))
        if with_budget:
            BudgetsBudget(
                self, "budget", name=f"{name}-monthly", budget_type="COST", time_unit="MONTHLY",
                limit_amount=f"{cfg['monthly_budget_dkk'] / usd_to_dkk:.2f}", limit_unit="USD",
                notification=[BudgetsBudgetNotification(
                    comparison_operator="GREATER_THAN", notification_type="ACTUAL",
                    threshold=cfg["budget_alert_percent"], threshold_type="PERCENTAGE",
                    subscriber_sns_topic_arns=[self.topic.arn])],
                tags=tags)
