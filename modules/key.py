"""The stack's own KMS key (rotated yearly): the alarm topic's messages and the log groups are encrypted with it.

Its policy: the account administers it through IAM (AWS's default key policy); the three alarm publishers
(CloudWatch, Budgets, EventBridge) may use it to publish to the encrypted topic, which the AWS-managed
``alias/aws/sns`` key does not allow; CloudWatch Logs may use it for this account's log groups in the region.
"""

from __future__ import annotations

import json

from cdktn_provider_aws.kms_alias import KmsAlias
from cdktn_provider_aws.kms_key import KmsKey
from constructs import Construct

from modules.access import KEY_POLICY_RESOURCE, document

PUBLISHERS = ("cloudwatch.amazonaws.com", "budgets.amazonaws.com", "events.amazonaws.com")
LOGS_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]


def key_policy(account: str, region: str) -> dict:
    return document(
        {"Sid": "AccountAdministersTheKey", "Effect": "Allow",  # AWS's default key policy: IAM decides who
         "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": KEY_POLICY_RESOURCE},
        {"Sid": "AlarmPublishersEncrypt", "Effect": "Allow", "Principal": {"Service": list(PUBLISHERS)},
         "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": KEY_POLICY_RESOURCE},
        {"Sid": "LogGroupsEncrypt", "Effect": "Allow", "Principal": {"Service": f"logs.{region}.amazonaws.com"},
         "Action": LOGS_ACTIONS, "Resource": KEY_POLICY_RESOURCE,
         "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                   f"arn:aws:logs:{region}:{account}:log-group:*"}}})


class StackKey(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, region: str, account: str, tags: dict[str, str]):
        super().__init__(scope, id)
        self.key = KmsKey(self, "key", description=f"{name}: alarm messages and logs", enable_key_rotation=True,
                          deletion_window_in_days=30, policy=json.dumps(key_policy(account, region)), tags=tags)
        KmsAlias(self, "alias", name=f"alias/{name}", target_key_id=self.key.key_id)
        self.arn = self.key.arn
