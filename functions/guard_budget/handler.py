"""Lambda GuardBudget: runs wildlife.stages.guard_budget (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
