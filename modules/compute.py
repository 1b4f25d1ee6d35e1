"""AWS Batch for Stage 1: a spot GPU environment first, a CPU environment after it, the detector images.

The profile's ``compute`` section: ``max_vcpus`` / ``min_vcpus`` / ``desired_vcpus`` per environment
(``min_vcpus`` above 0 keeps instances, and their bill, running while idle; Batch itself moves the desired
count afterwards, so Terraform ignores its drift), ``spot`` with ``spot_bid_percentage`` (Spot only launches
below that share of the On-Demand price; unset: up to the On-Demand price) and ``allocation_strategy``,
``gpu_required`` (true: no CPU environment to fall back to). Three job queues over the same environments,
``high``/``normal``/``low`` (``wildlife.asl.QUEUE_PRIORITIES``): when jobs wait for capacity, the scheduler
serves the higher queue first; ``run --priority`` picks one.

Retries: "retry once, then fail": a job whose host went away (spot reclaim: status reason ``Host EC2*``) is
retried once; a job that exits with code 2 (bad input or missing model, see ``runtimes.batch``) or fails for
any other reason is not. Each attempt is bounded by the workflow's timeout.
"""

from __future__ import annotations

import json

from cdktn_provider_aws.batch_compute_environment import (
    BatchComputeEnvironment,
    BatchComputeEnvironmentComputeResources,
)
from cdktn_provider_aws.batch_job_definition import (
    BatchJobDefinition,
    BatchJobDefinitionRetryStrategy,
    BatchJobDefinitionRetryStrategyEvaluateOnExit,
    BatchJobDefinitionTimeout,
)
from cdktn_provider_aws.batch_job_queue import BatchJobQueue, BatchJobQueueComputeEnvironmentOrder
from cdktn_provider_aws.ecr_lifecycle_policy import EcrLifecyclePolicy
from cdktn_provider_aws.ecr_repository import (
    EcrRepository,
    EcrRepositoryEncryptionConfiguration,
    EcrRepositoryImageScanningConfiguration,
)
from cdktn_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from constructs import Construct

from modules.access import BATCH_JOB_IO, document, s3_statements
from wildlife.asl import QUEUE_PRIORITIES, queue_name
from wildlife.monthly_stop import environments as environment_sizes

IMAGES = ("detector", "detector-cpu")


def assume(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def repository(scope: Construct, id: str, name: str, tags: dict[str, str]) -> EcrRepository:
    """An ECR repository: immutable tags, scanned on push, KMS-encrypted, the last 10 images kept."""
    repo = EcrRepository(scope, id, name=name, image_tag_mutability="IMMUTABLE",
                         image_scanning_configuration=EcrRepositoryImageScanningConfiguration(scan_on_push=True),
                         force_delete=False,
                         encryption_configuration=[EcrRepositoryEncryptionConfiguration(encryption_type="KMS")],
                         tags=tags)
    EcrLifecyclePolicy(scope, f"{id}-lifecycle", repository=repo.name, policy=json.dumps({"rules": [
        {"rulePriority": 1, "description": "keep the last 10 images",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
         "action": {"type": "expire"}}]}))
    return repo


class Compute(Construct):
    def __init__(self, scope: Construct, id: str, *, name: str, cfg: dict, subnet_ids: list[str],
                 security_group_id: str, bucket_arn: str, timeout_s: int, tags: dict[str, str]):
        super().__init__(scope, id)
        self.repositories = {}
        for image in IMAGES:
            self.repositories[image] = repository(self, f"repo-{image}", f"{name}/{image}", tags)
        service_role = IamRole(self, "batch-service", name_prefix="odin-batch-service-",
                               assume_role_policy=assume("batch.amazonaws.com"), tags=tags)
        IamRolePolicyAttachment(self, "batch-service-policy", role=service_role.name,
                                policy_arn="arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole")
        instance_role = IamRole(self, "instance", name_prefix="odin-batch-instance-",
                                assume_role_policy=assume("ec2.amazonaws.com"), tags=tags)
        IamRolePolicyAttachment(self, "instance-ecs", role=instance_role.name,
                                policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role")
        profile = IamInstanceProfile(self, "instance-profile", name_prefix="odin-batch-", role=instance_role.name)
        self.job_role = IamRole(self, "job", name_prefix="odin-batch-job-",
                                assume_role_policy=assume("ecs-tasks.amazonaws.com"), tags=tags)
        # the containers read the photos and the media table and write their shard results, nothing else
        IamRolePolicy(self, "job-data", role=self.job_role.id,
                      policy=json.dumps(document(*s3_statements(bucket_arn, BATCH_JOB_IO))))
        environments = []
        strategy = cfg.get("allocation_strategy") or (
            "SPOT_CAPACITY_OPTIMIZED" if cfg["spot"] else "BEST_FIT_PROGRESSIVE")
        if strategy == "BEST_FIT":
            raise ValueError("compute.allocation_strategy BEST_FIT needs a Spot Fleet role and cannot be updated in "
                             "place; use SPOT_PRICE_CAPACITY_OPTIMIZED (or SPOT_CAPACITY_OPTIMIZED)")
        bid = cfg.get("spot_bid_percentage")
        if bid is not None and not (cfg["spot"] and 1 <= int(bid) <= 100):
            raise ValueError(f"compute.spot_bid_percentage {bid!r}: a whole percentage 1-100, and only with spot: true")
        sizes = environment_sizes(name, cfg)
        for env_name, size in sizes.items():
            kind = env_name.rsplit("-", 1)[1]
            desired = int(cfg.get("desired_vcpus", size["min_vcpus"]))
            if not size["min_vcpus"] <= desired <= size["max_vcpus"]:
                raise ValueError(f"compute.desired_vcpus {desired} is outside min_vcpus..max_vcpus")
            env = BatchComputeEnvironment(
                self, f"{kind}-environment", type="MANAGED",
                service_role=service_role.arn,
                compute_resources=BatchComputeEnvironmentComputeResources(
                    type="SPOT" if cfg["spot"] else "EC2", allocation_strategy=strategy,
                    bid_percentage=int(bid) if bid is not None else None,
                    min_vcpus=size["min_vcpus"], max_vcpus=size["max_vcpus"], desired_vcpus=desired,
                    instance_type=cfg[f"{kind}_instance_types"],
                    subnets=subnet_ids, security_group_ids=[security_group_id], instance_role=profile.arn,
                    tags=tags),
                tags=tags)
            # provider 5.x calls it compute_environment_name (6.x, which the bindings speak: name)
            env.add_override("compute_environment_name", env_name)
            # Batch scales the desired count itself; the monthly stop and `budget resume` change sizes and state
            env.add_override("lifecycle.ignore_changes", ["compute_resources[0].desired_vcpus"])
            environments.append(env)
        self.environments = environments
        order = [BatchJobQueueComputeEnvironmentOrder(order=i, compute_environment=e.arn)
                 for i, e in enumerate(environments)]
        self.queues = {priority: BatchJobQueue(self, f"queue-{priority}" if priority != "normal" else "queue",
                                               name=queue_name(name, priority), state="ENABLED", priority=value,
                                               compute_environment_order=order, tags=tags)
                       for priority, value in QUEUE_PRIORITIES.items()}
        self.queue = self.queues["normal"]
        retry = BatchJobDefinitionRetryStrategy(attempts=2, evaluate_on_exit=[
            BatchJobDefinitionRetryStrategyEvaluateOnExit(on_status_reason="Host EC2*", action="RETRY"),
            BatchJobDefinitionRetryStrategyEvaluateOnExit(on_exit_code="2", action="EXIT"),
            BatchJobDefinitionRetryStrategyEvaluateOnExit(on_reason="*", action="EXIT")])
        container = {
            "image": f"{self.repositories['detector'].repository_url}:{cfg['detector_image_tag']}",
            "jobRoleArn": self.job_role.arn,
            "resourceRequirements": [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "15000"},
                                     {"type": "GPU", "value": "1"}],
            # a progress line every 30 s in the job's log (wildlife.progress): photos done, rate, time left
            "environment": [{"name": "ODIN_PROGRESS_INTERVAL_S", "value": "30"}],
            "readonlyRootFilesystem": False,
        }
        self.job_definition = BatchJobDefinition(
            self, "detector-job", name=f"{name}-detector", type="container", platform_capabilities=["EC2"],
            container_properties=json.dumps(container), retry_strategy=retry,
            timeout=BatchJobDefinitionTimeout(attempt_duration_seconds=timeout_s), propagate_tags=True, tags=tags)
