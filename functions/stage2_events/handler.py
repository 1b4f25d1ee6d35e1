"""Lambda for Stage2Events; the stage itself is in wildlife.stages."""

from wildlife.aws import handle


def handler(event, context):
    return handle("Stage2Events", event, context)
