"""Lambda for the state machine's Catch path: writes run_report.json with the error."""

from wildlife.aws import failure_report


def handler(event, context):
    return failure_report(event)
