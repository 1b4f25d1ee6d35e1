"""The network Batch runs in: a VPC over two AZs, private subnets, and a way out for images and logs.

``egress: endpoints`` keeps traffic on AWS's network (S3 gateway endpoint, free; ECR, Logs, STS and the three
ECS endpoints the Batch instances' ECS agent registers and polls through, about 0.011 USD/h each per AZ:
7 x 2 AZ, ~112 USD a month standing); ``egress: nat`` uses one NAT gateway instead (about 0.046 USD/h plus
0.046 USD/GB), cheaper while idle, dearer for heavy image pulls.
"""

from __future__ import annotations

import json

from cdktn_provider_aws.default_security_group import DefaultSecurityGroup
from cdktn_provider_aws.eip import Eip
from cdktn_provider_aws.internet_gateway import InternetGateway
from cdktn_provider_aws.nat_gateway import NatGateway
from cdktn_provider_aws.route import Route
from cdktn_provider_aws.route_table import RouteTable
from cdktn_provider_aws.route_table_association import RouteTableAssociation
from cdktn_provider_aws.security_group import SecurityGroup, SecurityGroupEgress, SecurityGroupIngress
from cdktn_provider_aws.subnet import Subnet
from cdktn_provider_aws.vpc import Vpc
from cdktn_provider_aws.vpc_endpoint import VpcEndpoint
from cdktn_provider_aws.vpc_endpoint_policy import VpcEndpointPolicy
from constructs import Construct

from modules.checkov import accept

INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "sts", "ecs", "ecs-agent", "ecs-telemetry")
# Without these three a Batch instance in a private subnet without NAT cannot register with its ECS cluster, and
# no job ever starts (AWS's ECS guide: all three are needed, else traffic goes to the public endpoints). They keep
# AWS's default endpoint policy: the agent's calls are authorised by the instance role (compute.py), and the
# actions the agent uses change with its versions, so a narrower list here could stop it.
AGENT_ENDPOINTS = ("ecs", "ecs-agent", "ecs-telemetry")


def ecr_layer_bucket(region: str) -> str:
    """The AWS-owned bucket ECR serves image layers from (ECR's VPC endpoint guide names it)."""
    return f"arn:aws:s3:::prod-{region}-starport-layer-bucket"


def s3_endpoint_policy(region: str, bucket_arn: str) -> dict:
    """Through the gateway: the stack's bucket (the jobs' data) and ECR's layers (the images), nothing else."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "StackBucket", "Effect": "Allow", "Principal": "*",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"], "Resource": [bucket_arn, f"{bucket_arn}/*"]},
        {"Sid": "EcrImageLayers", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"{ecr_layer_bucket(region)}/*"}]}


def interface_endpoint_policy(service: str, region: str, account: str, name: str) -> dict:
    """ECR: pull the stack's images; Logs: the Batch jobs' log streams; STS: the stack's roles only."""
    if service.startswith("ecr."):
        statements = [
            {"Sid": "Login", "Effect": "Allow", "Principal": "*", "Action": "ecr:GetAuthorizationToken",
             "Resource": "*"},
            {"Sid": "PullTheStacksImages", "Effect": "Allow", "Principal": "*",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
             "Resource": f"arn:aws:ecr:{region}:{account}:repository/{name}/*"}]
    elif service == "logs":
        statements = [{"Sid": "BatchJobLogs", "Effect": "Allow", "Principal": "*",
                       "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                       "Resource": f"arn:aws:logs:{region}:{account}:log-group:/aws/batch/job:*"}]
    else:  # sts
        statements = [{"Sid": "TheStacksRoles", "Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole",
                       "Resource": f"arn:aws:iam::{account}:role/odin-*"},
                      {"Sid": "WhoAmI", "Effect": "Allow", "Principal": "*", "Action": "sts:GetCallerIdentity",
                       "Resource": "*"}]
    return {"Version": "2012-10-17", "Statement": statements}


class Network(Construct):
    def __init__(self, scope: Construct, id: str, *, region: str, cidr: str, egress: str, tags: dict[str, str],
                 for_batch: bool = True):
        super().__init__(scope, id)
        if egress not in ("endpoints", "nat"):
            raise ValueError(f"network.egress must be 'endpoints' or 'nat', not {egress!r}")
        self.vpc = Vpc(self, "vpc", cidr_block=cidr, enable_dns_hostnames=True, enable_dns_support=True,
                       tags={**tags, "Name": "odin"})
        accept(self.vpc, "CKV2_AWS_11", "accepted risk: no flow logs. Nothing may connect in (no ingress rule but "
               "HTTPS from the VPC to its endpoints); Batch may connect out on TCP 443 only, to anywhere: AWS "
               "endpoints with egress: endpoints, the internet through the NAT with egress: nat. Flow logs would "
               "record that traffic, not restrict it")
        DefaultSecurityGroup(self, "default-closed", vpc_id=self.vpc.id, tags=tags)  # no rules: nothing gets in or out
        base = cidr.split(".")
        zones = [f"{region}a", f"{region}b"]  # named, not looked up: no data source calls AWS at plan time
        self.private = [Subnet(self, f"private-{z[-1]}", vpc_id=self.vpc.id, availability_zone=z,
                               cidr_block=f"{base[0]}.{base[1]}.{10 + i}.0/24",
                               tags={**tags, "Name": f"odin-private-{z[-1]}"}) for i, z in enumerate(zones)]
        self.routes = RouteTable(self, "private-routes", vpc_id=self.vpc.id, tags=tags)
        for i, sn in enumerate(self.private):
            RouteTableAssociation(self, f"private-assoc-{i}", subnet_id=sn.id, route_table_id=self.routes.id)
        self.security_group = None if not for_batch else SecurityGroup(
            self, "batch", name_prefix="odin-batch-", vpc_id=self.vpc.id, description="Odin Batch jobs",
            egress=[SecurityGroupEgress(from_port=443, to_port=443, protocol="tcp", cidr_blocks=["0.0.0.0/0"],
                                        description="HTTPS to AWS APIs, endpoints and weather providers")],
            tags=tags)
        self.region = region
        self.interface: dict[str, VpcEndpoint] = {}
        self.s3 = VpcEndpoint(self, "s3", vpc_id=self.vpc.id, service_name=f"com.amazonaws.{region}.s3",
                              vpc_endpoint_type="Gateway", route_table_ids=[self.routes.id], tags=tags)
        if egress == "endpoints":
            endpoint_sg = SecurityGroup(
                self, "endpoints", name_prefix="odin-endpoints-", vpc_id=self.vpc.id,
                description="Interface endpoints for Batch",
                ingress=[SecurityGroupIngress(from_port=443, to_port=443, protocol="tcp", cidr_blocks=[cidr],
                                              description="HTTPS from the VPC")],
                tags=tags)
            for name in INTERFACE_ENDPOINTS:
                self.interface[name] = VpcEndpoint(self, f"endpoint-{name.replace('.', '-')}", vpc_id=self.vpc.id,
                            service_name=f"com.amazonaws.{region}.{name}", vpc_endpoint_type="Interface",
                            private_dns_enabled=True, subnet_ids=[s.id for s in self.private],
                            security_group_ids=[endpoint_sg.id], tags=tags)
        else:
            igw = InternetGateway(self, "igw", vpc_id=self.vpc.id, tags=tags)
            public = Subnet(self, "public-a", vpc_id=self.vpc.id, availability_zone=zones[0],
                            cidr_block=f"{base[0]}.{base[1]}.0.0/24", tags={**tags, "Name": "odin-public-a"})
            public_routes = RouteTable(self, "public-routes", vpc_id=self.vpc.id, tags=tags)
            Route(self, "public-default", route_table_id=public_routes.id, destination_cidr_block="0.0.0.0/0",
                  gateway_id=igw.id)
            RouteTableAssociation(self, "public-assoc", subnet_id=public.id, route_table_id=public_routes.id)
            eip = Eip(self, "nat-ip", domain="vpc", tags=tags)
            nat = NatGateway(self, "nat", allocation_id=eip.id, subnet_id=public.id, tags=tags)
            Route(self, "private-default", route_table_id=self.routes.id, destination_cidr_block="0.0.0.0/0",
                  nat_gateway_id=nat.id)

    def limit_endpoints(self, *, name: str, account: str, bucket_arn: str) -> None:
        """Endpoint policies: what may pass each endpoint, on top of what the caller's role may do."""
        VpcEndpointPolicy(self, "s3-policy", vpc_endpoint_id=self.s3.id,
                          policy=json.dumps(s3_endpoint_policy(self.region, bucket_arn)))
        for service, endpoint in self.interface.items():
            if service in AGENT_ENDPOINTS:
                continue
            VpcEndpointPolicy(self, f"{service.replace('.', '-')}-policy", vpc_endpoint_id=endpoint.id,
                              policy=json.dumps(interface_endpoint_policy(service, self.region, account, name)))
