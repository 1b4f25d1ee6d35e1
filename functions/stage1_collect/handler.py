"""Lambda for Stage1Detect: gathers the Batch array job's shard results (wildlife.stages.stage1_collect)."""

from wildlife.aws import handle
from wildlife.graph import stage


def handler(event, context):
    return handle("Stage1Detect", event, context, function=stage("Stage1Detect").collect)
