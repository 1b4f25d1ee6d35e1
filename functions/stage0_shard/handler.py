"""Lambda Stage0ExifShards: runs wildlife.stages.stage0_shard (wildlife.graph.LAMBDAS)."""

from wildlife.aws import handler_for

handler = handler_for(__name__)
