"""Lambda Stage1Detect: runs wildlife.stages.stage1_collect (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
