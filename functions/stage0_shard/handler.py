"""Lambda Stage0ExifShards: runs wildlife.stages.stage0_shard (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
