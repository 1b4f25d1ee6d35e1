"""Lambda WriteFailureReport: runs wildlife.aws.failure_report (wildlife.graph.LAMBDAS)."""

from wildlife.aws import handler_for

handler = handler_for(__name__)
