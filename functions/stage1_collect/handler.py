"""Lambda Stage1Detect: runs wildlife.stages.stage1_collect (wildlife.graph.LAMBDAS)."""

from wildlife.aws import handler_for

handler = handler_for(__name__)
