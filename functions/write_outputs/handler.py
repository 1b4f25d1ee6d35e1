"""Lambda WriteOutputs: runs wildlife.stages.write_outputs (wildlife.graph.LAMBDAS)."""

from wildlife.aws import handler_for

handler = handler_for(__name__)
