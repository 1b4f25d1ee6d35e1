#!/usr/bin/env python3
"""Odin's AWS infrastructure: one Terraform stack per profile in conf/profiles/, synthesised by CDK Terrain.

    JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 python main.py     # -> cdktf.out/stacks/<profile>/

CDK Terrain (``cdktn``) is the maintained continuation of CDKTF, which HashiCorp archived on 2025-12-10; the
app keeps CDKTF's ``cdktf.json`` and ``main.py``. ``ODIN_PROFILES=aws`` synthesises only the named ones;
``ODIN_STATE_BACKEND=local`` keeps state beside the stack (an offline plan); ``ODIN_SYNTH_OUT`` moves the output;
``ODIN_AWS_ENDPOINT`` points every profile at an emulator (the tests apply the full AWS stack to moto).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from cdktn import App, LocalBackend, S3Backend, TerraformOutput, TerraformStack
from cdktn_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktn_provider_aws.provider import AwsProvider, AwsProviderDefaultTags, AwsProviderEndpoints
from constructs import Construct

from modules.compute import Compute
from modules.functions import Functions, placeholder_arns
from modules.key import StackKey
from modules.monitoring import Monitoring
from modules.monthly_stop import MonthlyStop
from modules.network import Network
from modules.storage import Storage
from modules.workflow import Workflow
from wildlife import asl, budget, monthly_stop

ROOT = Path(__file__).resolve().parent
PROVIDER_VERSION = "5.100.0"  # the offline mirror's version; the bindings speak 6.x, validate proves the fit
EMULATED_SERVICES = ("s3", "iam", "sts", "sfn", "ec2", "sns", "logs", "cloudwatch", "events", "lambda_",
                     "batch", "budgets", "ecr", "kms")


class OdinStack(TerraformStack):
    def __init__(self, scope: Construct, profile: dict):
        super().__init__(scope, profile["name"])
        name, region, tags = profile["name"], profile["region"], dict(profile.get("tags", {}))
        tags["environment"] = profile["environment"]
        self.add_override("terraform.required_providers.aws.version", PROVIDER_VERSION)
        self._provider(profile, tags)
        self._backend(profile)
        services = profile["services"]
        account = DataAwsCallerIdentity(self, "account").account_id  # the provider asks STS for it anyway
        key = StackKey(self, "key", name=name, region=region, account=account, tags=tags)
        storage = Storage(self, "storage", name=name, tags=tags,
                          force_destroy=bool(profile.get("storage", {}).get("force_destroy")))
        network = Network(self, "network", region=region, cidr=profile["network"]["cidr"],
                          egress=profile["network"]["egress"], tags=tags, for_batch=services["batch"])
        network.limit_endpoints(name=name, account=account, bucket_arn=storage.bucket.arn)
        timeout_s = int(profile.get("workflow", {}).get("timeout_s") or budget.DEFAULT_MAX_JOB_DURATION_S)
        if services["batch"]:
            compute = Compute(self, "compute", name=name, cfg=profile["compute"],
                              subnet_ids=[s.id for s in network.private],
                              security_group_id=network.security_group.id, bucket_arn=storage.bucket.arn,
                              timeout_s=timeout_s, tags=tags)
            queues = {priority: q.arn for priority, q in compute.queues.items()}
            job_definition = compute.job_definition.arn
        else:  # emulator: Batch is mocked by name in the state machine
            queues = {p: f"arn:aws:batch:{region}:000000000000:job-queue/{asl.queue_name(name, p)}"
                      for p in asl.QUEUE_PRIORITIES}
            job_definition = f"arn:aws:batch:{region}:000000000000:job-definition/{name}-detector"
        if services["lambda"]:
            functions = Functions(self, "functions", name=name, cfg=profile["functions"],
                                  bucket_arn=storage.bucket.arn, log_key_arn=key.arn,
                                  environment={"ODIN_PROFILE": name}, tags=tags)
            arns = functions.arns
        else:
            arns = placeholder_arns(name, region)
        workflow = Workflow(self, "workflow", name=name, region=region, account=account,
                            bucket_arn=storage.bucket.arn, log_key_arn=key.arn,
                            resources=asl.Resources(functions=arns, job_queues=queues, job_definition=job_definition,
                                                    timeout_s=timeout_s,
                                                    max_parallel=int(profile["compute"].get("max_parallel_jobs", 40))),
                            log_retention_days=profile["functions"]["log_retention_days"], tags=tags)
        monitoring = Monitoring(self, "monitoring", name=name, account=account, key_arn=key.arn,
                                cfg=profile["monitoring"], state_machine_arn=workflow.machine.arn,
                                with_batch=services["batch"], with_budget=services["budgets"],
                                usd_to_dkk=float(budget.load_prices()["usd_to_dkk"]), tags=tags)
        if services["lambda"] and services["batch"] and services["budgets"]:
            stop = MonthlyStop(self, "monthly-stop", name=name, cfg=profile["functions"], code=functions.code,
                        bucket_arn=storage.bucket.arn, bucket_name=storage.bucket.bucket,
                        environment_arns=[e.arn for e in compute.environments],
                        sizes=monthly_stop.environments(name, profile["compute"]), topic_arn=monitoring.topic.arn,
                        log_key_arn=key.arn, tags=tags)
            # the marker is seeded before the TLS-only policy applies (an emulator speaks plain HTTP)
            storage.tls_only.add_override("depends_on", [f"aws_s3_object.{stop.marker.friendly_unique_id}"])
        TerraformOutput(self, "bucket", value=storage.bucket.bucket)
        TerraformOutput(self, "state_machine_arn", value=workflow.machine.arn)
        TerraformOutput(self, "job_queue", value=queues[asl.DEFAULT_PRIORITY])
        TerraformOutput(self, "job_queues", value=queues)

    def _provider(self, profile: dict, tags: dict[str, str]) -> None:
        endpoint = os.environ.get("ODIN_AWS_ENDPOINT") or profile.get("endpoint")
        if endpoint:  # an emulator: fixed test credentials, no AWS account checks
            AwsProvider(self, "aws", region=profile["region"], access_key="test", secret_key="test",
                        skip_credentials_validation=True,
                        skip_metadata_api_check="true", s3_use_path_style=True,
                        endpoints=[AwsProviderEndpoints(**{s: endpoint for s in EMULATED_SERVICES})],
                        default_tags=[AwsProviderDefaultTags(tags=tags)])
        else:
            AwsProvider(self, "aws", region=profile["region"], default_tags=[AwsProviderDefaultTags(tags=tags)])

    def _backend(self, profile: dict) -> None:
        state = profile["state"]
        if os.environ.get("ODIN_STATE_BACKEND") == "local":  # an offline plan: no state bucket to reach
            LocalBackend(self, path=f"terraform.{profile['name']}.tfstate")  # beside the stack
        elif state["backend"] == "s3":
            S3Backend(self, bucket=state["bucket"], key=state["key"], region=profile["region"], encrypt=True,
                      dynamodb_table=state.get("dynamodb_table"))
        else:
            LocalBackend(self, path=str(ROOT / state["path"]))


def load_profiles(names: list[str] | None = None) -> list[dict]:
    folder = ROOT / "conf" / "profiles"
    profiles = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]
    return [p for p in profiles if not names or p["name"] in names or p["name"].removeprefix("odin-") in names]


def main() -> None:
    app = App(outdir=os.environ.get("ODIN_SYNTH_OUT") or str(ROOT / "cdktf.out"))
    wanted = [n for n in os.environ.get("ODIN_PROFILES", "").split(",") if n]
    for profile in load_profiles(wanted):
        OdinStack(app, profile)
    app.synth()


if __name__ == "__main__":
    main()
