"""Lambda for GuardBudget; the stage itself is in wildlife.stages."""

from wildlife.aws import handle


def handler(event, context):
    return handle("GuardBudget", event, context)
