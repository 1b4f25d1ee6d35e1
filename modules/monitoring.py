"""Alarms that reach someone: failed or timed-out runs, failed Batch jobs and the monthly budget, to one topic.

The topic is encrypted with the stack's own key (``modules.key``): CloudWatch alarms cannot publish to a
topic under the AWS-managed ``alias/aws/sns`` key, whose policy no one can change. The key's policy lets the
three publishers (CloudWatch, Budgets, EventBridge) use it; the topic's policy lets each publish, only from
this account and only from its own alarms, budget or rule. Subscribers: ``monitoring.alarm_email`` and/or
``monitoring.alarm_https_endpoint`` from the profile, overridable per deploy with the Terraform variables
``alarm_email`` / ``alarm_https_endpoint`` (``TF_VAR_alarm_email``); an email subscriber must confirm the
message AWS sends before alarms arrive. A plan with neither warns (the ``alarm_subscriber`` check).
"""

from __future__ import annotations

import json

from cdktn import TerraformLocal, TerraformStack, TerraformVariable
from cdktn_provider_aws.budgets_budget import BudgetsBudget, BudgetsBudgetNotification
from cdktn_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktn_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktn_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktn_provider_aws.sns_topic import SnsTopic
from cdktn_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktn_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from modules.access import document
from wildlife.monthly_stop import budget_name

SUBSCRIBERS = {"alarm_email": "email", "alarm_https_endpoint": "https"}  # profile key / variable -> protocol


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, account: str, key_arn: str, cfg: dict,
                 state_machine_arn: str, with_batch: bool, with_budget: bool, usd_to_dkk: float,
                 tags: dict[str, str]):
        super().__init__(scope, id)
        self.topic = SnsTopic(self, "alarms", name=f"{name}-alarms", kms_master_key_id=key_arn, tags=tags)
        for key, protocol in SUBSCRIBERS.items():
            variable = TerraformVariable(self, key, type="string", default="",
                                         description=f"{protocol} subscriber of the alarm topic, instead of the "
                                                     "profile's ('' keeps the profile's)")
            variable.override_logical_id(key)  # TF_VAR_<key>
            # the variable where set (CI passes an unset one as ''), else the profile's, else none
            chosen = TerraformLocal(self, f"{key}-chosen",
                                    f'${{var.{key} != "" ? var.{key} : {json.dumps(cfg.get(key) or "")}}}')
            chosen.override_logical_id(key)
            sub = SnsTopicSubscription(self, f"subscriber-{protocol}", topic_arn=self.topic.arn, protocol=protocol,
                                       endpoint=chosen.as_string)
            sub.add_override("count", f'${{local.{key} == "" ? 0 : 1}}')
        TerraformStack.of(self).add_override("check.alarm_subscriber.assert", {
            "condition": " || ".join(f'local.{k} != ""' for k in SUBSCRIBERS).join(("${", "}")),
            "error_message": "The alarm topic has no subscriber: alarms and the budget alert reach no one. "
                             "Set monitoring.alarm_email in the profile or TF_VAR_alarm_email."})
        alarm_arns = []
        for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
            alarm = CloudwatchMetricAlarm(
                self, f"alarm-{metric}", alarm_name=f"{name}-{metric}", namespace="AWS/States",
                metric_name=metric, dimensions={"StateMachineArn": state_machine_arn}, statistic="Sum",
                period=300, evaluation_periods=1, threshold=1, comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching", alarm_actions=[self.topic.arn], tags=tags)
            alarm_arns.append(alarm.arn)
        statements = [{"Sid": "AlarmsPublish", "Effect": "Allow",
                       "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish",
                       "Resource": self.topic.arn,
                       "Condition": {"ArnLike": {"aws:SourceArn": alarm_arns},
                                     "StringEquals": {"aws:SourceAccount": account}}}]
        if with_batch:
            rule = CloudwatchEventRule(self, "batch-failed", name=f"{name}-batch-job-failed", event_pattern=json.dumps(
                {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"],
                 "detail": {"status": ["FAILED"], "jobName": [{"prefix": "odin-"}]}}), tags=tags)
            CloudwatchEventTarget(self, "batch-failed-to-sns", rule=rule.name, arn=self.topic.arn)
            statements.append({"Sid": "BatchFailuresPublish", "Effect": "Allow",
                               "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish",
                               "Resource": self.topic.arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule.arn}}})
        if with_budget:
            BudgetsBudget(
                self, "budget", name=budget_name(name), budget_type="COST", time_unit="MONTHLY",
                limit_amount=f"{cfg['monthly_budget_dkk'] / usd_to_dkk:.2f}", limit_unit="USD",
                # the alert warns; at 100% the monthly stop (modules.monthly_stop) also stops spending
                notification=[BudgetsBudgetNotification(
                    comparison_operator="GREATER_THAN", notification_type="ACTUAL",
                    threshold=percent, threshold_type="PERCENTAGE", subscriber_sns_topic_arns=[self.topic.arn])
                    for percent in sorted({cfg["budget_alert_percent"], 100})],
                tags=tags)
            statements.append({"Sid": "BudgetPublishes", "Effect": "Allow",
                               "Principal": {"Service": "budgets.amazonaws.com"}, "Action": "sns:Publish",
                               "Resource": self.topic.arn,
                               "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{account}:budget/"
                                                                          f"{budget_name(name)}"},
                                             "StringEquals": {"aws:SourceAccount": account}}})
        SnsTopicPolicy(self, "publishers", arn=self.topic.arn, policy=json.dumps(document(*statements)))
