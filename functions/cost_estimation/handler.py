"""Lambda CostEstimation: runs wildlife.stages.cost_estimation (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
