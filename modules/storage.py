"""The data bucket: encrypted, private, TLS-only, versioned, tiered to cheaper storage as it ages; work files,
frames and crops expire."""

from __future__ import annotations

import json

from cdktn_provider_aws.s3_bucket import S3Bucket
from cdktn_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
    S3BucketLifecycleConfigurationRuleTransition,
)
from cdktn_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktn_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktn_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktn_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktn_provider_aws.s3_bucket_versioning import S3BucketVersioningA, S3BucketVersioningVersioningConfiguration
from constructs import Construct

from modules.checkov import accept

RUNS_PREFIX = "runs/"  # run outputs: runs/<session>/
# Intermediate images a run keeps for later stages (video frames, detection crops for species models), under
# runs/ but beside the sessions, since a lifecycle filter matches a literal prefix, never runs/*/frames/:
FRAMES_PREFIX = f"{RUNS_PREFIX}frames/"  # runs/frames/<session>/, expire FRAMES_DAYS after they are written
CROPS_PREFIX = f"{RUNS_PREFIX}crops/"  # runs/crops/<session>/, expire CROPS_DAYS after they are written
FRAMES_DAYS = 3 * 365  # the design: frames kept 3 years
CROPS_DAYS = 2 * 365  # the design: crops kept 2 years
WORK_PREFIX = "tmp/"  # a run's work files: tmp/<session>/, which expire after 14 days
INPUT_PREFIX = "input/"  # what users upload: input/<session>/


def bucket_prefix(name: str) -> str:
    return f"{name}-data-"


class Storage(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, tags: dict[str, str], force_destroy: bool = False):
        """``force_destroy``: destroy the bucket with its objects (the emulator profile); never on AWS, where
        a destroy must not take the photos and results with it."""
        super().__init__(scope, id)
        self.bucket = S3Bucket(self, "data", bucket_prefix=bucket_prefix(name), force_destroy=force_destroy, tags=tags)
        accept(self.bucket, "CKV_AWS_18", "accepted risk: no server access logs (and the stack creates no CloudTrail "
               "data events), so object reads and writes are not audited; enable CloudTrail S3 data events for "
               "this bucket where photos of people must be accounted for")
        accept(self.bucket, "CKV_AWS_144", "no cross-region replication: the bucket is versioned, the photos are "
               "copies the CLI uploads from their owners' disks, and replication would double the storage bill")
        accept(self.bucket, "CKV2_AWS_62", "no event notifications: nothing consumes bucket events; the CLI "
               "starts each run explicitly")
        S3BucketOwnershipControls(self, "ownership", bucket=self.bucket.id,
                                  rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"))
        S3BucketPublicAccessBlock(self, "private", bucket=self.bucket.id, block_public_acls=True,
                                  block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True)
        S3BucketVersioningA(self, "versioning", bucket=self.bucket.id,
                            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"))
        S3BucketServerSideEncryptionConfigurationA(
            self, "encryption", bucket=self.bucket.id,
            rule=[S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=(
                    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                        sse_algorithm="aws:kms")),
                bucket_key_enabled=True)])
        self.tls_only = S3BucketPolicy(self, "tls-only", bucket=self.bucket.id, policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                           "Resource": [self.bucket.arn, f"{self.bucket.arn}/*"],
                           "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
        tiers = [S3BucketLifecycleConfigurationRuleTransition(days=30, storage_class="STANDARD_IA"),
                 S3BucketLifecycleConfigurationRuleTransition(days=90, storage_class="GLACIER"),
                 S3BucketLifecycleConfigurationRuleTransition(days=365, storage_class="DEEP_ARCHIVE")]
        S3BucketLifecycleConfiguration(self, "lifecycle", bucket=self.bucket.id, rule=[
            S3BucketLifecycleConfigurationRule(
                id="photos-age-to-archive", status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=INPUT_PREFIX)], transition=tiers,
                noncurrent_version_expiration=[
                    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=30)]),
            S3BucketLifecycleConfigurationRule(
                id="results-age-to-archive", status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=RUNS_PREFIX)], transition=tiers,
                noncurrent_version_expiration=[
                    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=30)]),
            S3BucketLifecycleConfigurationRule(
                id="abort-stalled-uploads", status="Enabled", filter=[S3BucketLifecycleConfigurationRuleFilter()],
                abort_incomplete_multipart_upload=[
                    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(days_after_initiation=7)]),
            # frames and crops also age through the results' tiers (runs/); S3 applies both rules to them
            S3BucketLifecycleConfigurationRule(
                id="frames-expire", status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=FRAMES_PREFIX)],
                expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=FRAMES_DAYS)]),
            S3BucketLifecycleConfigurationRule(
                id="crops-expire", status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=CROPS_PREFIX)],
                expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=CROPS_DAYS)]),
            S3BucketLifecycleConfigurationRule(
                id="intermediate-files-expire", status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=WORK_PREFIX)],
                expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=14)]),
        ])
