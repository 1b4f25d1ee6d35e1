"""Lambda WriteFailureReport: runs runtimes.lambda_adapter.failure_report (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
