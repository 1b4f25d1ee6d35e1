"""Lambda WriteOutputs: runs wildlife.stages.write_outputs (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
