"""Lambda for one item of Stage0Exif's Distributed Map (wildlife.stages.stage0_shard)."""

from wildlife.aws import handle
from wildlife.graph import stage


def handler(event, context):
    return handle("Stage0Exif", event, context, function=stage("Stage0Exif").fan_out)
