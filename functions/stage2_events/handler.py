"""Lambda Stage2Events: runs wildlife.stages.stage2_events (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
