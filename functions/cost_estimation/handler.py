"""Lambda CostEstimation: runs wildlife.stages.cost_estimation (wildlife.graph.LAMBDAS)."""

from wildlife.aws import handler_for

handler = handler_for(__name__)
