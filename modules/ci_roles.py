"""The two roles GitHub Actions assumes (by OIDC), as policy documents to create once, outside the stack.

    python -m modules.ci_roles plan  --repo owner/odin --account 123456789012   # trust + permissions, JSON
    python -m modules.ci_roles apply --repo owner/odin --account 123456789012   # trust only (see below)

- The plan role trusts only the ``plan`` environment of this repository (plan-with-credentials.yml and
  apply.yml's plan job) and may only read: describe/list/get the stack's resource types, read the state file
  (not write it, no lock: plans run with ``-lock=false``), list the data bucket's configuration. It cannot
  read or write an object of the data bucket (an explicit deny), so a plan never touches users' photos.
- The apply role trusts only the ``production`` environment, which a reviewer must approve. It creates IAM
  roles, so its permissions amount to administering the stack; give it a permissions boundary where the
  account has one. Its permission policy is the account owner's to write; this module states the trust.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modules.access import document
from modules.storage import bucket_prefix

ROOT = Path(__file__).resolve().parent.parent

OIDC_HOST = "token.actions.githubusercontent.com"
# read verbs only: each is a Describe/Get/List (or the budget's View) of a service the stack uses
READ_ACTIONS = (
    "batch:Describe*", "budgets:ViewBudget", "budgets:ListTagsForResource", "cloudwatch:DescribeAlarms",
    "cloudwatch:ListTagsForResource", "ec2:Describe*", "ecr:DescribeRepositories", "ecr:GetLifecyclePolicy",
    "ecr:ListTagsForResource", "events:DescribeRule", "events:ListTagsForResource", "events:ListTargetsByRule",
    "iam:GetInstanceProfile", "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole", "iam:ListRolePolicies", "kms:DescribeKey", "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListResourceTags", "lambda:GetFunction",
    "lambda:GetFunctionCodeSigningConfig", "lambda:GetFunctionConcurrency", "lambda:ListVersionsByFunction",
    "logs:DescribeLogGroups", "logs:DescribeResourcePolicies", "logs:ListTagsForResource",
    "logs:ListTagsLogGroup", "sns:GetSubscriptionAttributes", "sns:GetTopicAttributes", "sns:ListTagsForResource",
    "states:DescribeStateMachine", "states:ListStateMachineVersions", "states:ListTagsForResource",
    "states:ValidateStateMachineDefinition", "sts:GetCallerIdentity",
)
BUCKET_CONFIG_READS = (
    "s3:ListBucket", "s3:GetBucket*", "s3:GetLifecycleConfiguration", "s3:GetEncryptionConfiguration",
    "s3:GetAccelerateConfiguration", "s3:GetReplicationConfiguration",
)


def trust(account: str, repo: str, environment: str) -> dict:
    return document({
        "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{OIDC_HOST}"},
        "Condition": {"StringEquals": {f"{OIDC_HOST}:aud": "sts.amazonaws.com",
                                       f"{OIDC_HOST}:sub": f"repo:{repo}:environment:{environment}"}}})


def plan_permissions(state_bucket: str, state_key: str, data_bucket_prefix: str) -> dict:
    return document(
        {"Sid": "ReadTheStacksResources", "Effect": "Allow", "Action": list(READ_ACTIONS), "Resource": "*"},
        {"Sid": "ReadTheDataBucketsConfiguration", "Effect": "Allow", "Action": list(BUCKET_CONFIG_READS),
         "Resource": f"arn:aws:s3:::{data_bucket_prefix}*"},
        {"Sid": "ReadTheState", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{state_bucket}/{state_key}"},
        {"Sid": "FindTheState", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": f"arn:aws:s3:::{state_bucket}"},
        {"Sid": "NeverThePhotos", "Effect": "Deny", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": f"arn:aws:s3:::{data_bucket_prefix}*/*"})


def main(argv: list[str]) -> int:
    import yaml  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m modules.ci_roles")
    parser.add_argument("role", choices=["plan", "apply"])
    parser.add_argument("--repo", required=True, help="owner/name on GitHub")
    parser.add_argument("--account", required=True, help="the AWS account id")
    args = parser.parse_args(argv)
    environment = "plan" if args.role == "plan" else "production"
    out = {"trust": trust(args.account, args.repo, environment)}
    if args.role == "plan":
        profile = yaml.safe_load((ROOT / "conf" / "profiles" / "aws.yaml").read_text())
        out["permissions"] = plan_permissions(profile["state"]["bucket"], profile["state"]["key"],
                                              bucket_prefix(profile["name"]))
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
